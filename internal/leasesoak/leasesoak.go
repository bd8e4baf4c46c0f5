// Package leasesoak measures how often a healthy worker is declared dead:
// idle and lightly used workers, never killed, watched by masters with
// leases of several lengths, while busy loops hold every core. Each loss
// it sees is false by construction. It is `processional falseloss`, and
// the defaults of master.DefaultLease and master.DefaultChildLease were
// chosen from its figures (docs/lifetimes.md).
package leasesoak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

// envSpin marks a busy-loop child: it spins on every core until its
// stdin, a pipe from the soak, ends (the soak exited or died).
const envSpin = "PROCESSIONAL_LEASESOAK_SPIN"

// SpinMain runs the busy-loop child when the process is one, and then
// never returns; it reports false otherwise. A binary that runs
// [Run] calls it first thing in main.
func SpinMain() bool {
	if os.Getenv(envSpin) == "" {
		return false
	}
	for range runtime.NumCPU() {
		go func() {
			for x := uint64(1); ; x = x*6364136223846793005 + 1 {
				_ = x
			}
		}()
	}
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
	return true
}

// Config is what a soak runs.
type Config struct {
	// Duration is how long the workers are watched.
	Duration time.Duration
	// Leases are the lease lengths tried, side by side: one master each.
	Leases []time.Duration
	// Children and Elsewhere are how many workers each master spawns
	// (on their lane) and finds in a pool of `processional worker`
	// processes (over NATS), per lease.
	Children, Elsewhere int
	// Spinners is how many busy-loop processes run meanwhile, each
	// spinning on every core; 0 for none.
	Spinners int
	// Every is how often each worker is called (a trivial call), so that
	// calls and heartbeats share the worker as in use.
	Every time.Duration
	// Binary is the processional binary the pool workers run: it must
	// serve builtin.Sum.
	Binary string
}

// Row is one lease and one kind of worker: how many were declared lost
// or dropped their master over how many worker-hours.
type Row struct {
	Kind        string  `json:"kind"` // "child" or "elsewhere"
	LeaseMs     int64   `json:"lease_ms"`
	Workers     int     `json:"workers"`
	Hours       float64 `json:"worker_hours"`
	Lost        int     `json:"lost"`   // the master declared the worker lost (ErrWorkerLost)
	Lapsed      int     `json:"lapsed"` // the worker dropped the master (ErrLeaseLapsed)
	Other       int     `json:"other"`  // any other failure of a call
	Calls       int64   `json:"calls"`
	PerHour     float64 `json:"false_loss_per_hour"` // failed calls (lost, lapsed, other) per worker-hour
	WorstCallMs float64 `json:"worst_call_ms"`
	P99CallMs   float64 `json:"p99_call_ms"`
	Starved     bool    `json:"starved"`
	Race        bool    `json:"race"`
	FirstError  string  `json:"first_error,omitempty"`
}

// Run soaks cfg and writes one JSON line per lease and kind to out.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	if cfg.Duration <= 0 || len(cfg.Leases) == 0 || cfg.Children+cfg.Elsewhere <= 0 || cfg.Every <= 0 {
		return fmt.Errorf("leasesoak: want a duration, leases, workers and a call interval, got %+v", cfg)
	}
	if cfg.Elsewhere > 0 && cfg.Binary == "" {
		return errors.New("leasesoak: workers elsewhere want the processional binary")
	}
	stopSpin, err := spin(cfg.Spinners)
	if err != nil {
		return err
	}
	defer stopSpin()
	type result struct {
		rows []Row
		err  error
	}
	results := make([]result, len(cfg.Leases))
	var wg sync.WaitGroup
	for i, lease := range cfg.Leases {
		wg.Go(func() {
			rows, err := soakLease(ctx, cfg, lease)
			results[i] = result{rows, err}
		})
	}
	wg.Wait()
	enc := json.NewEncoder(out)
	var errs []error
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		for _, row := range r.rows {
			row.Starved, row.Race = cfg.Spinners > 0, raceEnabled
			if err := enc.Encode(row); err != nil {
				return err
			}
		}
	}
	return errors.Join(errs...)
}

// spin starts n busy-loop children; the func returned stops them.
func spin(n int) (func(), error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var cmds []*exec.Cmd
	var pipes []io.Closer
	stop := func() {
		for _, p := range pipes {
			p.Close()
		}
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}
	for range n {
		c := exec.Command(self)
		c.Env = append(os.Environ(), envSpin+"=1")
		in, err := c.StdinPipe()
		if err != nil {
			stop()
			return nil, err
		}
		if err := c.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("leasesoak: start a busy loop: %w", err)
		}
		cmds, pipes = append(cmds, c), append(pipes, in)
	}
	return stop, nil
}

// tally gathers one kind's figures under one lease.
type tally struct {
	kind                string
	workers             int
	lost, lapsed, other atomic.Int64
	calls               atomic.Int64
	mu                  sync.Mutex
	lat                 []time.Duration
	first               string
}

func (t *tally) note(d time.Duration, err error) {
	t.calls.Add(1)
	t.mu.Lock()
	t.lat = append(t.lat, d)
	if err != nil && t.first == "" {
		t.first = err.Error()
	}
	t.mu.Unlock()
	switch {
	case err == nil:
	case errors.Is(err, bus.ErrLeaseLapsed):
		t.lapsed.Add(1)
	case errors.Is(err, bus.ErrWorkerLost):
		t.lost.Add(1)
	default:
		t.other.Add(1)
	}
}

func (t *tally) row(lease, d time.Duration) Row {
	t.mu.Lock()
	defer t.mu.Unlock()
	sort.Slice(t.lat, func(i, j int) bool { return t.lat[i] < t.lat[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r := Row{
		Kind: t.kind, LeaseMs: lease.Milliseconds(), Workers: t.workers,
		Hours: d.Hours() * float64(t.workers),
		Lost:  int(t.lost.Load()), Lapsed: int(t.lapsed.Load()), Other: int(t.other.Load()),
		Calls: t.calls.Load(), FirstError: t.first,
	}
	if n := len(t.lat); n > 0 {
		r.WorstCallMs, r.P99CallMs = ms(t.lat[n-1]), ms(t.lat[n*99/100])
	}
	if r.Hours > 0 {
		r.PerHour = float64(r.Lost+r.Lapsed+r.Other) / r.Hours
	}
	return r
}

// soakLease runs one master with the given lease, its children and its
// pool, for cfg.Duration.
func soakLease(ctx context.Context, cfg Config, lease time.Duration) ([]Row, error) {
	m, err := master.New(ctx, master.WithLease(lease, lease/4))
	if err != nil {
		return nil, err
	}
	defer m.Close()
	children := &tally{kind: "child", workers: cfg.Children}
	elsewhere := &tally{kind: "elsewhere", workers: cfg.Elsewhere}

	pool := fmt.Sprintf("soak%d", lease.Milliseconds())
	var procs []*exec.Cmd
	defer func() {
		for _, c := range procs {
			c.Process.Signal(os.Interrupt)
			c.Wait()
		}
	}()
	for i := range cfg.Elsewhere {
		c := exec.Command(cfg.Binary, "worker", "--nats", m.URL(), "--token", m.Token(),
			"--id", pool+"-"+strconv.Itoa(i), "--pool", pool)
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			return nil, fmt.Errorf("leasesoak: start a pool worker: %w", err)
		}
		procs = append(procs, c)
	}

	run, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for range cfg.Children {
		wg.Go(func() { watchChild(run, m, cfg.Every, children) })
	}
	if cfg.Elsewhere > 0 {
		p, err := waitPool(run, m, pool, cfg.Elsewhere)
		if err != nil {
			cancel()
			wg.Wait()
			return nil, err
		}
		for _, s := range p.Members() {
			wg.Go(func() { watch(run, p, s.ID(), cfg.Every, elsewhere) })
		}
	}
	wg.Wait()
	return []Row{children.row(lease, cfg.Duration), elsewhere.row(lease, cfg.Duration)}, nil
}

// waitPool waits for n members of pool to answer.
func waitPool(ctx context.Context, m *master.Master, name string, n int) (*master.Pool, error) {
	for {
		p, err := m.Pool(ctx, name)
		if err == nil && len(p.Members()) == n {
			return p, nil
		}
		if ctx.Err() != nil {
			got := 0
			if p != nil {
				got = len(p.Members())
			}
			return nil, fmt.Errorf("leasesoak: pool %s gathered %d of its %d workers: %v", name, got, n, err)
		}
	}
}

// watchChild spawns a child and calls it every interval until ctx ends;
// a child declared lost is closed and spawned anew.
func watchChild(ctx context.Context, m *master.Master, every time.Duration, t *tally) {
	for ctx.Err() == nil {
		s, err := m.Spawn(ctx)
		if err != nil {
			if ctx.Err() == nil {
				t.note(0, err)
			}
			return
		}
		callUntilLost(ctx, s, every, t)
		s.Close()
	}
}

// watch calls pool member id every interval until ctx ends; a member
// declared lost is found again by a refresh of the pool.
func watch(ctx context.Context, p *master.Pool, id string, every time.Duration, t *tally) {
	for ctx.Err() == nil {
		var s *master.Slave
		for _, mb := range p.Members() {
			if mb.ID() == id {
				s = mb
			}
		}
		if s == nil {
			p.Refresh(ctx)
			continue
		}
		callUntilLost(ctx, s, every, t)
	}
}

// callUntilLost calls s every interval until ctx ends or a call fails.
func callUntilLost(ctx context.Context, s *master.Slave, every time.Duration, t *tally) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		start := time.Now()
		_, err := master.Invoke(context.WithoutCancel(ctx), s, builtin.Sum, []int{1, 2})
		t.note(time.Since(start), err)
		if err != nil {
			return
		}
	}
}
