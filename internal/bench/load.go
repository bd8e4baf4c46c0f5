package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
)

// A load is several master processes, each with a connection of its own
// to one server and many calls in flight on it, for a fixed window; then
// every call in flight must end, with its result or a named error, within
// a drain time. Separate processes, not goroutines of the bench: each
// master's encoding, bookkeeping and heartbeats run on their own runtime,
// as the masters of a shared server do, and the bench process measures
// without doing the work it measures.
//
// Each call is Invoke(bench.inc, i), checked to return i+1: a blocking
// call, the common verb, so each master's calls also keep their order on
// the server. Its raw equivalent (the nats_load rows) is a nats.go
// request, from the same processes, to a bare responder child on the same
// NATS server, checked to echo its 8 bytes. In the bench (loadPair), the
// worker called is a `processional worker` process of its own on that
// server, over TCP, as the responder is: both sides cross the same hops.

const modeLoad = "load" // PROCESSIONAL_BENCH_URL, _TOKEN, _SERVER_ID, _INFLIGHT, and _SUBJECT for raw requests

// LoadOptions configure [StartLoad].
type LoadOptions struct {
	// Binary is run as each master: its main must call worker.Main and
	// ChildMain first (the processional binary does).
	Binary string
	// URL and Token are the NATS server's (a `processional server`'s, or
	// any whose workers' binary registered bench.inc).
	URL, Token string
	// ServerID is the id of the worker the masters call; empty means the
	// `processional server`'s own (server.DefaultID).
	ServerID string
	// Masters is the number of master processes; 0 means 8.
	Masters int
	// InFlight is the calls each master keeps in flight; 0 means 1000.
	InFlight int
	// RawSubject is a raw responder's subject on the same NATS server,
	// for the raw runs; empty if there is none.
	RawSubject string
	// Drain bounds the time calls in flight may take to end once the
	// window is over; a call still pending then is hung. 0 means 10 s.
	Drain time.Duration
	// Lease is each master's lease on the server's worker, heartbeats
	// every tenth of it; 0 means the master's default.
	Lease time.Duration
}

// Load is a set of running master processes connected to one server,
// ready to run loads. Close stops them.
type Load struct {
	o       LoadOptions
	procs   []*loadProc
	release func() // the hold on the fork thread
}

type loadProc struct {
	*child
	in    io.WriteCloser
	lines chan string // its stdout, line by line; closed at its end
}

// LoadResult is one run of a load, summed over its masters.
type LoadResult struct {
	Masters, InFlight int
	// Window is the time the masters kept sending calls.
	Window time.Duration
	// Elapsed is the longest time a master took, from its first call to
	// the end of its last.
	Elapsed time.Duration
	// Sent counts the calls sent; each ended either OK (with the right
	// result), Failed (with an error, or a wrong result), or Hung (still
	// pending after the drain time). Lost is what none of these counts,
	// which must be zero.
	Sent, OK, Failed, Hung, Lost int64
	// FirstError is the first failure's text, if any.
	FirstError string
	// Throughput is OK / Elapsed, in calls per second.
	Throughput float64
	// P50, P99 and Max are latencies of the calls that ended, from the
	// call to its result or error (to within 1/32 of their value).
	P50, P99, Max time.Duration
}

// StartLoad starts the master processes, each connected to the server,
// and returns once each has made a first call.
func StartLoad(ctx context.Context, o LoadOptions) (*Load, error) {
	if o.Masters <= 0 {
		o.Masters = 8
	}
	if o.InFlight <= 0 {
		o.InFlight = 1000
	}
	if o.Drain <= 0 {
		o.Drain = 10 * time.Second
	}
	l := &Load{o: o, release: holdFork()}
	for range o.Masters {
		p, err := startLoadProc(o)
		if err != nil {
			l.Close()
			return nil, err
		}
		l.procs = append(l.procs, p)
	}
	timeout := time.After(60 * time.Second)
	for i, p := range l.procs {
		select {
		case line, ok := <-p.lines:
			if !ok || line != "ready" {
				l.Close()
				return nil, fmt.Errorf("load master %d of %d: did not start (%q, %s)", i+1, len(l.procs), line, p.status())
			}
		case <-timeout:
			l.Close()
			return nil, fmt.Errorf("load master %d of %d: not ready within 60s", i+1, len(l.procs))
		case <-ctx.Done():
			l.Close()
			return nil, ctx.Err()
		}
	}
	return l, nil
}

func startLoadProc(o LoadOptions) (*loadProc, error) {
	cmd := exec.Command(o.Binary)
	cmd.Env = append(os.Environ(), envChild+"="+modeLoad,
		"PROCESSIONAL_BENCH_URL="+o.URL, "PROCESSIONAL_BENCH_TOKEN="+o.Token,
		"PROCESSIONAL_BENCH_SERVER_ID="+o.ServerID,
		"PROCESSIONAL_BENCH_INFLIGHT="+strconv.Itoa(o.InFlight),
		"PROCESSIONAL_BENCH_SUBJECT="+o.RawSubject,
		"PROCESSIONAL_BENCH_LEASE="+o.Lease.String())
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = time.Second
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := startCmd(cmd); err != nil {
		return nil, err
	}
	p := &loadProc{child: &child{cmd: cmd, done: make(chan struct{})}, in: in, lines: make(chan string, 1)}
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	// Wait only once stdout is read to its end: os/exec says so.
	go func() { <-read; cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *loadProc) status() string {
	select {
	case <-p.done:
		return "exited: " + p.cmd.ProcessState.String()
	default:
		return "running"
	}
}

// Close stops the master processes: each closes its master and exits once
// its standard input ends; those still there after 5 s are killed. It
// returns once all are reaped; it is idempotent.
func (l *Load) Close() {
	for _, p := range l.procs {
		p.in.Close()
	}
	deadline := time.After(5 * time.Second)
	for _, p := range l.procs {
		go func() {
			for range p.lines { // stdout must be read for the process to end
			}
		}()
		select {
		case <-p.done:
		case <-deadline:
		}
		p.kill()
	}
	l.procs = nil
	l.release()
}

// PIDs lists the master processes.
func (l *Load) PIDs() []int {
	var pids []int
	for _, p := range l.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	return pids
}

// loadCommand is a run's order to a master process, one JSON line.
type loadCommand struct {
	Raw    bool          `json:"raw"`
	Window time.Duration `json:"window"`
	Drain  time.Duration `json:"drain"`
}

// loadReport is a master process's account of one run, one JSON line.
type loadReport struct {
	Sent, OK, Failed, Hung int64
	FirstError             string
	Elapsed                time.Duration
	Hist                   [][2]int64 // latency histogram: bucket, count
}

// Run runs one load on every master at once for window (raw requests to
// the raw responder if raw), and returns once every call has ended or the
// drain time is over.
func (l *Load) Run(ctx context.Context, raw bool, window time.Duration) (LoadResult, error) {
	r := LoadResult{Masters: len(l.procs), InFlight: l.o.InFlight, Window: window}
	if raw && l.o.RawSubject == "" {
		return r, errors.New("load: no raw responder")
	}
	cmd, err := json.Marshal(loadCommand{Raw: raw, Window: window, Drain: l.o.Drain})
	if err != nil {
		return r, err
	}
	cmd = append(cmd, '\n')
	for i, p := range l.procs {
		if _, err := p.in.Write(cmd); err != nil {
			return r, fmt.Errorf("load master %d: %v (%s)", i+1, err, p.status())
		}
	}
	var hist histogram
	timeout := time.After(window + l.o.Drain + 30*time.Second)
	for i, p := range l.procs {
		var line string
		var ok bool
		select {
		case line, ok = <-p.lines:
			if !ok {
				return r, fmt.Errorf("load master %d: ended mid-run (%s)", i+1, p.status())
			}
		case <-timeout:
			return r, fmt.Errorf("load master %d: no report within %s after the window", i+1, l.o.Drain+30*time.Second)
		case <-ctx.Done():
			return r, ctx.Err()
		}
		var rep loadReport
		if err := json.Unmarshal([]byte(line), &rep); err != nil {
			return r, fmt.Errorf("load master %d: report %q: %v", i+1, line, err)
		}
		r.Sent += rep.Sent
		r.OK += rep.OK
		r.Failed += rep.Failed
		r.Hung += rep.Hung
		r.Elapsed = max(r.Elapsed, rep.Elapsed)
		if r.FirstError == "" {
			r.FirstError = rep.FirstError
		}
		for _, b := range rep.Hist {
			if b[0] < 0 || b[0] >= int64(len(hist)) {
				return r, fmt.Errorf("load master %d: histogram bucket %d", i+1, b[0])
			}
			hist[b[0]].Add(b[1])
		}
	}
	r.Lost = r.Sent - r.OK - r.Failed - r.Hung
	if r.Elapsed > 0 {
		r.Throughput = float64(r.OK) / r.Elapsed.Seconds()
	}
	r.P50, r.P99, r.Max = hist.quantile(0.5), hist.quantile(0.99), hist.quantile(1)
	return r, nil
}

// String sums the result up on one line.
func (r LoadResult) String() string {
	s := fmt.Sprintf("%d masters × %d in flight for %s: %d sent, %d ok, %d failed, %d hung, %d lost in %s; %.0f calls/s, p50 %s, p99 %s, max %s",
		r.Masters, r.InFlight, r.Window, r.Sent, r.OK, r.Failed, r.Hung, r.Lost, r.Elapsed.Round(time.Millisecond),
		r.Throughput, r.P50, r.P99, r.Max)
	if r.FirstError != "" {
		s += "; first error: " + r.FirstError
	}
	return s
}

// loadChild is a load's master process: it connects to the server (and,
// for raw runs, to its NATS), makes a first call, says "ready", then runs
// each load it reads on stdin and reports it on stdout, until stdin ends.
func loadChild() error {
	ctx := context.Background()
	url, token := os.Getenv("PROCESSIONAL_BENCH_URL"), os.Getenv("PROCESSIONAL_BENCH_TOKEN")
	inflight, err := strconv.Atoi(os.Getenv("PROCESSIONAL_BENCH_INFLIGHT"))
	if err != nil {
		return err
	}
	opts := []master.Option{master.WithToken(token)}
	if id := os.Getenv("PROCESSIONAL_BENCH_SERVER_ID"); id != "" {
		opts = append(opts, master.WithServerID(id))
	}
	if lease, err := time.ParseDuration(os.Getenv("PROCESSIONAL_BENCH_LEASE")); err == nil && lease > 0 {
		opts = append(opts, master.WithLease(lease, lease/10))
	}
	s, err := master.Connect(ctx, url, opts...)
	if err != nil {
		return err
	}
	defer s.Close()
	if n, err := master.Invoke(ctx, s, Inc, 1); err != nil || n != 2 {
		return fmt.Errorf("first call: %d, %v", n, err)
	}
	var nc *nats.Conn
	subject := os.Getenv("PROCESSIONAL_BENCH_SUBJECT")
	if subject != "" {
		if nc, err = nats.Connect(url, nats.Token(token), nats.Name("processional bench load")); err != nil {
			return err
		}
		defer nc.Close()
	}
	call := func(ctx context.Context, i int64) error {
		n, err := master.Invoke(ctx, s, Inc, int(i))
		if err == nil && n != int(i)+1 {
			err = fmt.Errorf("bench.inc(%d) = %d", i, n)
		}
		return err
	}
	rawCall := func(ctx context.Context, i int64) error {
		data := binary.BigEndian.AppendUint64(nil, uint64(i))
		msg, err := nc.RequestWithContext(ctx, subject, data)
		if err == nil && !bytes.Equal(msg.Data, data) {
			err = fmt.Errorf("raw request %d: echoed %x", i, msg.Data)
		}
		return err
	}
	fmt.Println("ready")
	out := json.NewEncoder(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var c loadCommand
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return fmt.Errorf("command %q: %v", sc.Text(), err)
		}
		f := call
		if c.Raw {
			if nc == nil {
				return errors.New("a raw run, and no raw responder")
			}
			f = rawCall
		}
		if err := out.Encode(runLoad(ctx, f, inflight, c.Window, c.Drain)); err != nil {
			return err
		}
	}
	return sc.Err()
}

// runLoad keeps inflight calls of f in flight for window: each of
// inflight goroutines calls again as soon as its call ends. Once the
// window is over, the calls in flight have drain to end; those that have
// not are hung, and cancelled.
func runLoad(ctx context.Context, f func(context.Context, int64) error, inflight int, window, drain time.Duration) loadReport {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		hist                   histogram
		next                   atomic.Int64
		sent, ok, failed, hung atomic.Int64
		firstErr               sync.Once
		rep                    loadReport
		wg                     sync.WaitGroup
	)
	start := time.Now()
	stop := start.Add(window)
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				i := next.Add(1)
				sent.Add(1)
				t0 := time.Now()
				err := f(ctx, i)
				d := time.Since(t0)
				if err != nil && ctx.Err() != nil { // cancelled after the drain
					hung.Add(1)
					return
				}
				hist.add(d)
				if err != nil {
					failed.Add(1)
					firstErr.Do(func() { rep.FirstError = err.Error() })
					continue
				}
				ok.Add(1)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var elapsed time.Duration
	select {
	case <-done:
		elapsed = time.Since(start)
	case <-time.After(time.Until(stop) + drain):
		elapsed = time.Since(start)
		cancel()
		<-done
	}
	rep.Sent, rep.OK, rep.Failed, rep.Hung, rep.Elapsed = sent.Load(), ok.Load(), failed.Load(), hung.Load(), elapsed
	for i := range hist {
		if n := hist[i].Load(); n > 0 {
			rep.Hist = append(rep.Hist, [2]int64{int64(i), n})
		}
	}
	return rep
}

// histogram counts durations in log-linear buckets: exact below 32 ns,
// then 16 buckets per power of two.
type histogram [60*16 + 32]atomic.Int64

func bucket(d time.Duration) int {
	v := uint64(max(d, 0))
	if v < 32 {
		return int(v)
	}
	e := bits.Len64(v) - 5 // v>>e is in [16, 32)
	return e*16 + int(v>>e)
}

// bucketMid is the middle of bucket i.
func bucketMid(i int) time.Duration {
	if i < 32 {
		return time.Duration(i)
	}
	e := i/16 - 1
	lo := uint64(i-e*16) << e
	return time.Duration(lo + (uint64(1)<<e)/2)
}

func (h *histogram) add(d time.Duration) { h[bucket(d)].Add(1) }

// quantile returns the q-quantile of the counted durations (0 if none).
func (h *histogram) quantile(q float64) time.Duration {
	var total int64
	for i := range h {
		total += h[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := max(int64(q*float64(total)+0.5), 1) // the rank-th smallest, 1-based
	var seen int64
	for i := range h {
		seen += h[i].Load()
		if seen >= rank {
			return bucketMid(i)
		}
	}
	return bucketMid(len(h) - 1)
}

// loadPair measures the load of 8 master processes × 1000 calls in flight
// on a `processional worker` process against the same processes' raw
// nats.go requests to a bare responder process, with the same calls in
// flight: the worker and the responder each in a process of its own,
// connected over TCP to the same NATS server (a `processional server`'s,
// whose own worker is idle), as the masters are. N is the window in milliseconds; each side reports the
// time N calls take at the rate it measured, so that the row's value is
// that rate. The latency rows are recorded from the same runs. A run that
// loses, fails or hangs a call fails the bench.
func loadPair() *Pair {
	return &Pair{
		Name: "load", Baseline: "nats_load", Unit: "tasks/s", N: 3000,
		Also: []Figure{
			{Name: "load_p50_us", Baseline: "nats_load_p50_us", Unit: "us"},
			{Name: "load_p99_us", Baseline: "nats_load_p99_us", Unit: "us"},
		},
		setup: func(ctx context.Context, e *Env) error {
			if err := e.startServer(ctx); err != nil {
				return err
			}
			nc, err := nats.Connect(e.server.url, nats.Token(e.server.token))
			if err != nil {
				return err
			}
			defer nc.Close()
			if e.loadEcho == nil {
				e.loadRawTo = "bench.load." + wire.NewID("b")
				c, _, err := e.startResponder(ctx, nc, e.server.url, e.server.token, e.loadRawTo)
				if err != nil {
					return err
				}
				e.loadEcho = c
			}
			if e.loadWorker == nil {
				e.loadWorkerID = wire.NewID("wl")
				c, err := e.startNATSWorker(ctx, nc, e.server.url, e.server.token, e.loadWorkerID)
				if err != nil {
					return err
				}
				e.loadWorker = c
			}
			if e.load == nil {
				l, err := StartLoad(ctx, LoadOptions{Binary: e.binary, URL: e.server.url, Token: e.server.token, ServerID: e.loadWorkerID, RawSubject: e.loadRawTo})
				if err != nil {
					return err
				}
				e.load = l
			}
			return nil
		},
		base: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			return e.loadRound(ctx, true, n)
		},
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			return e.loadRound(ctx, false, n)
		},
	}
}

func (e *Env) loadRound(ctx context.Context, raw bool, ms int) (time.Duration, error) {
	r, err := e.load.Run(ctx, raw, time.Duration(ms)*time.Millisecond)
	if err != nil {
		return 0, err
	}
	name := "load"
	if raw {
		name = "nats_load"
	}
	if r.Failed > 0 || r.Hung > 0 || r.Lost != 0 || r.OK == 0 {
		return 0, fmt.Errorf("%s: %s", name, r)
	}
	e.record(name+"_p50_us", float64(r.P50)/1e3)
	e.record(name+"_p99_us", float64(r.P99)/1e3)
	return time.Duration(float64(ms) / r.Throughput * 1e9), nil
}

// startNATSWorker runs a `processional worker` process with id on the
// NATS server at url, over TCP, and returns once nc hears its hello.
func (e *Env) startNATSWorker(ctx context.Context, nc *nats.Conn, url, token, id string) (*child, error) {
	cmd := exec.Command(e.binary, "worker", "--nats", url, "--token", token, "--id", id)
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	c, err := startProc(cmd)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := nc.Request(wire.ControlSubject(id, "hello"), nil, time.Second)
		if err == nil {
			return c, nil
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("worker %s ended before its hello: %s", id, c.cmd.ProcessState)
		case <-ctx.Done():
			c.kill()
			return nil, ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			c.kill()
			return nil, fmt.Errorf("worker %s: no hello within 30s: %v", id, err)
		}
		time.Sleep(50 * time.Millisecond) // a request with no responder fails at once
	}
}
