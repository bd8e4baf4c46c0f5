// Package bench measures processional against baselines taken in the same
// run: each row is a ratio to a raw equivalent (a goroutine and a channel,
// a locked thread and a channel, a raw nats.go request-reply to a child
// process, a child process that only connects, a death seen by the lease
// alone), with the same processes, hops and payload wherever the row's
// subject is not the transport itself, so that its figure means
// something on any machine. The processional binary's `bench` command and
// the e2e Go benchmarks both drive it.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// Row is one line of `processional bench --json`. The field names and the
// row names are a contract: tools read them. Rows are added, never renamed.
type Row struct {
	Name          string  `json:"name"`
	Value         float64 `json:"value"`
	Unit          string  `json:"unit"`
	Baseline      string  `json:"baseline"`
	BaselineValue float64 `json:"baseline_value"`
	Ratio         float64 `json:"ratio"` // Value / BaselineValue
}

// Pair is one measured figure and its baseline. Both sides are timed in
// rounds of n operations, alternating, so that the machine's noise falls
// on both.
type Pair struct {
	Name     string
	Baseline string
	// Unit is "ns/op" or "ms" (lower is better) or "tasks/s" (higher is
	// better).
	Unit string
	// N is the number of operations in one round.
	N int
	// Chunks splits a round into that many alternations of the sides
	// (N/Chunks operations each), so that a burst of noise on this shared
	// machine falls on every side alike; 0 means 1.
	Chunks int
	// Extra lists further rows timed with the pair, in the same
	// alternating rounds, each ratio to the pair's baseline: references
	// (unix_rtt beside invoke_rtt) and rows with goals of their own
	// (nats_invoke_rtt, orphan_exit_pipe).
	Extra []string
	// Derived lists rows computed after the rounds from two of the
	// pair's timed sides, with no timing of their own (lane_rtt:
	// invoke_rtt's figure against unix_rtt's). They print after the
	// timed sides' rows.
	Derived []Derived
	// BaselineUnit, if set, is the unit the baseline row is printed in
	// when it is not Unit: child_start is ns/op wherever it is measured,
	// worker_start_ms is in ms. The ratio is the same in any unit.
	BaselineUnit string
	// Also lists figures that the sides record besides their time
	// (Env.record), each printed as a row of its own against a baseline
	// figure recorded in the same rounds: the median of what was
	// recorded, after the warm-up.
	Also []Figure

	setup   func(ctx context.Context, e *Env) error
	base    func(ctx context.Context, e *Env, n int) (time.Duration, error)
	measure func(ctx context.Context, e *Env, n int) (time.Duration, error)
	extra   []func(ctx context.Context, e *Env, n int) (time.Duration, error)
}

// Derived is a row made of two figures a pair timed in the same
// alternating rounds: the median round of side Of as its value, against
// the median round of side Over as its baseline (ratio = value /
// baseline_value, like every row). It puts a measured figure against a
// baseline other than the pair's own without timing anything twice:
// lane_rtt is the very figure of invoke_rtt, against unix_rtt, both
// measured beside nats_rtt. Over's row keeps its own baseline (unix_rtt
// stays a ratio to nats_rtt); a derived row's baseline is printed as
// that row, not as a baseline row of its own.
type Derived struct {
	Name string
	// Of and Over each name a timed side of the pair: its Name, its
	// Baseline or one of its Extra.
	Of, Over string
}

// Figure is a row that a pair's sides record as they run, with its
// baseline, another recorded figure: load_p99_us against
// nats_load_p99_us, worker_rss_mb against child_rss_mb.
type Figure struct {
	Name, Baseline string
	// Unit is "us" or "MB" (lower is better), or "tasks/s" (higher is
	// better).
	Unit string
	// Optional marks a figure the sides may not record
	// (lean_worker_rss_mb, without a worker-only binary): its row is
	// then left out, not an error.
	Optional bool
}

// HigherIsBetter reports whether the pair's ratio is a throughput.
func (p *Pair) HigherIsBetter() bool { return p.Unit == "tasks/s" }

// value turns the time n operations took into unit.
func value(unit string, d time.Duration, n int) float64 {
	switch unit {
	case "tasks/s":
		return float64(n) / d.Seconds()
	case "ms":
		return d.Seconds() * 1000 / float64(n)
	}
	return float64(d.Nanoseconds()) / float64(n)
}

// perOp is the size of the time units, in nanoseconds.
var perOp = map[string]float64{"ns/op": 1, "us": 1e3, "ms": 1e6}

// rows lists the names of the rows the pair prints.
func (p *Pair) rows() []string {
	names := append([]string{p.Baseline}, p.measured()...)
	for _, f := range p.Also {
		names = append(names, f.Baseline)
	}
	return names
}

// measured lists the rows the pair prints but its baselines: its own,
// its extras, its derived rows and its figures.
func (p *Pair) measured() []string {
	names := append([]string{p.Name}, p.Extra...)
	for _, d := range p.Derived {
		names = append(names, d.Name)
	}
	for _, f := range p.Also {
		names = append(names, f.Name)
	}
	return names
}

// selected reports whether --only's names keep the pair: no names at
// all, or one of the rows it measures, or one of its baselines that no
// pair measures as a row of its own. So nats_rtt keeps every pair
// against it, and invoke_rtt keeps its own pair, not shm_10mb's (whose
// baseline it is).
func (p *Pair) selected(only []string) bool {
	if len(only) == 0 || slices.ContainsFunc(p.measured(), func(x string) bool { return slices.Contains(only, x) }) {
		return true
	}
	for _, b := range p.rows() {
		if slices.Contains(only, b) && !slices.ContainsFunc(Pairs(), func(q *Pair) bool { return slices.Contains(q.measured(), b) }) {
			return true
		}
	}
	return false
}

// Pairs lists every pair, in the order the command runs them.
func Pairs() []*Pair {
	return []*Pair{goroutinePair(), threadPair(), rttPair(), pipelinedPair(), spawnPair(), orphanPair(), workerLostPair(), leaseTeardownPair(), serverPair(), proxyPair(), shmPair(), copyPair(), resultPair(), floatsPair(), structsPair(), copyRemotePair(), shmColdPair(), copyNATSPair(), resultNATSPair(), floatsNATSPair(),
		floatsFirstPair(), structsFirstPair(), copyFirstPair(), resultFirstPair(), copyRemoteFirstPair(), shmColdFirstPair(),
		clusterPair(), poolPair(), workerPair(), loadPair(), streamPair(), streamFirstPair()}
}

// Options configure [Run].
type Options struct {
	// Only keeps the pairs any of whose row names it lists; empty keeps
	// all.
	Only []string
	// Rounds per side; 0 means 7. The figure is the median round.
	Rounds int
	// Scale multiplies every pair's operations per round; 0 means 1.
	Scale float64
	// Binary is the executable spawned as worker and baseline child; empty
	// means the current one. Its main must call worker.Main and ChildMain.
	Binary string
	// LeanWorker is the worker-only binary whose workers
	// lean_worker_rss_mb measures (cmd/processional-worker, or any whose
	// main calls worker.Main); empty means processional-worker beside
	// Binary, else one go build makes from the source tree. Without one,
	// that row is left out, and Progress says why.
	LeanWorker string
	// Progress, if set, receives a line per pair as it starts and as it
	// ends, with the time it took.
	Progress io.Writer
}

// Run measures the selected pairs and returns their rows: for each pair,
// the baseline row (unless an earlier pair printed it), then the measured
// row, then its extra rows, its derived rows and its figures.
func Run(ctx context.Context, o Options) ([]Row, error) {
	if o.Rounds <= 0 {
		o.Rounds = 7
	}
	if o.Scale <= 0 {
		o.Scale = 1
	}
	known := map[string]bool{}
	for _, p := range Pairs() {
		for _, x := range p.rows() {
			known[x] = true
		}
	}
	for _, name := range o.Only {
		if !known[name] {
			names := make([]string, 0, len(known))
			for k := range known {
				names = append(names, k)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("bench: unknown row %q; rows are %s", name, strings.Join(names, ", "))
		}
	}
	binary := o.Binary
	if binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		binary = exe
	}
	e := NewEnv(binary)
	defer e.Close()
	e.lean.given, e.progress = o.LeanWorker, o.Progress
	var rows []Row
	for _, p := range Pairs() {
		if !p.selected(o.Only) {
			continue
		}
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "measuring %s against %s…\n", p.Name, p.Baseline)
		}
		start := time.Now()
		r, err := p.Run(ctx, e, o.Rounds, max(1, int(float64(p.N)*o.Scale)))
		if err != nil {
			return rows, fmt.Errorf("bench %s: %w", p.Name, err)
		}
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "measured %s in %.1fs\n", p.Name, time.Since(start).Seconds())
		}
		if slices.ContainsFunc(rows, func(x Row) bool { return x.Name == r[0].Name }) {
			r = r[1:] // a baseline that an earlier pair printed already
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

var errSideTimeout = errors.New("bench: SideTimeout")

// SideTimeout bounds each run of a side of a pair: the warm-up, or one of
// a round's Chunks.
var SideTimeout = 2 * time.Minute

// Run measures one pair: rounds alternating between its baseline, itself
// and its extras, n operations each (in Chunks alternations), and returns
// the median round of each, then its Derived rows, then its Also figures.
func (p *Pair) Run(ctx context.Context, e *Env, rounds, n int) ([]Row, error) {
	if p.setup != nil {
		if err := p.setup(ctx, e); err != nil {
			return nil, err
		}
	}
	names := append([]string{p.Baseline, p.Name}, p.Extra...)
	sides := append([]func(context.Context, *Env, int) (time.Duration, error){p.base, p.measure}, p.extra...)
	// A side that hangs is a finding, never a bench that runs for ever:
	// past SideTimeout its context is cancelled, and the error names the
	// side. Cancelled, not given a deadline: calls carry their context's
	// deadline to the worker, which would then measure something else.
	run := func(i, n int) (time.Duration, error) {
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		watchdog := time.AfterFunc(SideTimeout, func() { cancel(errSideTimeout) })
		defer watchdog.Stop()
		d, err := sides[i](ctx, e, n)
		if err != nil {
			if context.Cause(ctx) == errSideTimeout {
				return 0, fmt.Errorf("%s: %d operations not done within SideTimeout (%v): %w", names[i], n, SideTimeout, err)
			}
			return 0, fmt.Errorf("%s: %w", names[i], err)
		}
		return d, nil
	}
	samples := make([][]float64, len(sides))
	// One warm-up round of each side, not counted.
	for i := range sides {
		if _, err := run(i, max(1, n/10)); err != nil {
			return nil, err
		}
	}
	e.recorded = nil // the warm-up's
	chunks := min(max(p.Chunks, 1), n)
	per := n / chunks
	for range rounds {
		total := make([]time.Duration, len(sides))
		for range chunks {
			for i := range sides {
				d, err := run(i, per)
				if err != nil {
					return nil, err
				}
				total[i] += d
			}
		}
		for i, d := range total {
			samples[i] = append(samples[i], value(p.Unit, d, per*chunks))
		}
	}
	base := median(samples[0])
	rows := []Row{{Name: p.Baseline, Value: base, Unit: p.Unit, Baseline: p.Baseline, BaselineValue: base, Ratio: 1}}
	if p.BaselineUnit != "" {
		v := base * perOp[p.Unit] / perOp[p.BaselineUnit]
		rows[0] = Row{Name: p.Baseline, Value: v, Unit: p.BaselineUnit, Baseline: p.Baseline, BaselineValue: v, Ratio: 1}
	}
	medians := map[string]float64{p.Baseline: base}
	for i, name := range names[1:] {
		v := median(samples[i+1])
		medians[name] = v
		rows = append(rows, Row{Name: name, Value: v, Unit: p.Unit, Baseline: p.Baseline, BaselineValue: base, Ratio: v / base})
	}
	for _, d := range p.Derived {
		v, ok := medians[d.Of]
		b, bok := medians[d.Over]
		if !ok || !bok {
			return nil, fmt.Errorf("%s: derived row %s: %s or %s is no side of the pair", p.Name, d.Name, d.Of, d.Over)
		}
		rows = append(rows, Row{Name: d.Name, Value: v, Unit: p.Unit, Baseline: d.Over, BaselineValue: b, Ratio: v / b})
	}
	for _, f := range p.Also {
		got, ok := e.recorded[f.Name]
		bv, bok := e.recorded[f.Baseline]
		if !ok && f.Optional && bok {
			continue
		}
		if !ok || !bok {
			return nil, fmt.Errorf("%s: no %s or %s recorded", p.Name, f.Name, f.Baseline)
		}
		b, v := median(bv), median(got)
		if !slices.ContainsFunc(rows, func(r Row) bool { return r.Name == f.Baseline }) {
			rows = append(rows, Row{Name: f.Baseline, Value: b, Unit: f.Unit, Baseline: f.Baseline, BaselineValue: b, Ratio: 1})
		}
		rows = append(rows, Row{Name: f.Name, Value: v, Unit: f.Unit, Baseline: f.Baseline, BaselineValue: b, Ratio: v / b})
	}
	return rows, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Goals are the ratios the project aims for, by row: at most for ns/op
// rows, at least for tasks/s rows. They are printed beside the figures,
// never asserted.
var Goals = map[string]float64{
	"goroutine_task": 3,
	"thread_invoke":  3,
	// By the lane, against a raw request-reply through the server.
	"invoke_rtt": 0.5,
	// The same call against the socket's own ping-pong: the lane's
	// floor.
	"lane_rtt": 1.3,
	// The same call by NATS (a worker spawned WithoutLane): that path
	// must not get slower than it was.
	// It must not be slower than a raw request-reply.
	"nats_invoke_rtt": 1.05,
	"pipelined":       1.5,
	// By NATS, where calls and replies go in batches.
	"pipelined_nats":     1.5,
	"spawn_first_result": 1.5,
	// Against lease, the same death seen by the lease alone, measured
	// (about 1 s): at most 5% of it.
	"orphan_exit": 0.05,
	// The same with no parent-death signal: the lane's EOF alone.
	"orphan_exit_pipe":       0.05,
	"worker_lost":            0.05,
	"lease_teardown":         1.5,
	"server_invoke_rtt":      1.05,
	"server_invoke_rtt_unix": 1.25,
	"proxy_call":             0.5,
	"shm_10mb":               2,
	"copy_10mb":              0.35,
	"floats_10mb":            0.35,
	"result_10mb":            0.35,
	// Against msgpack's own Marshal and Unmarshal of the same value, in
	// one process: what the call adds to encoding it.
	"structs_10mb": 1.2,
	// Through NATS chunks, as to another host.
	"copy_10mb_remote": 1.2,
	// Same host by NATS: in a transient segment.
	"copy_10mb_nats":   0.35,
	"result_10mb_nats": 0.35,
	"floats_10mb_nats": 0.35,
	// A new shared-memory buffer each time, filled, sent, closed.
	"shm_cold_10mb":      0.3,
	"cluster_invoke_rtt": 1.05,
	// Against raw requests to a queue group of as many responders.
	"pool_map": 1.5,
	// Many masters' calls through one server, against as many raw
	// requesters: more calls a second, and a tail no longer.
	"load":            1.5,
	"load_p99_us":     1,
	"worker_start_ms": 1.5,
	// Against raw pipelined request-reply, and a raw request-reply.
	"stream_items":      0.6,
	"stream_first_item": 1.3,
}

// ValueGoals are goals on a row's value itself, in its unit, where no
// baseline makes a ratio meaningful: at most for every unit but tasks/s.
// Printed beside the figures, never asserted.
var ValueGoals = map[string]float64{
	// An idle spawned worker's resident memory.
	"worker_rss_mb": 15,
	// The same, of the worker-only binary's workers.
	"lean_worker_rss_mb": 11,
	// The master's growth while it reads 1 GiB slowly: the window's 4
	// MiB, and 10 MB.
	"stream_backpressure_mb": 14,
}

// goalPlus names, for a row, a reference row whose ratio its goal adds:
// shm_10mb's goal is 2 plus the time to read the 10 MB (read_10mb).
var goalPlus = map[string]string{"shm_10mb": "read_10mb"}

// WriteJSON writes one JSON object per row.
func WriteJSON(w io.Writer, rows []Row) error {
	enc := json.NewEncoder(w)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// WriteTable writes the rows as a table for people, with each goal and
// whether it holds.
func WriteTable(w io.Writer, rows []Row) {
	fmt.Fprintf(w, "%-22s %14s %-8s %-22s %8s  %s\n", "row", "value", "unit", "baseline", "ratio", "goal")
	for _, r := range rows {
		goal := ""
		if g, ok := Goals[r.Name]; ok {
			plus := ""
			if extra, ok := goalPlus[r.Name]; ok {
				// The goal leaves room for work the row includes and
				// its baseline does not, measured in the same run.
				for _, x := range rows {
					if x.Name == extra && x.Baseline == r.Baseline {
						g += x.Ratio
						plus = fmt.Sprintf(" (2 + %s)", extra)
					}
				}
			}
			better, cmp := r.Ratio <= g, "≤"
			if r.Unit == "tasks/s" {
				better, cmp = r.Ratio >= g, "≥"
			}
			mark := "holds"
			if !better {
				mark = "MISSED"
			}
			goal = fmt.Sprintf("%s %.3g%s (%s)", cmp, g, plus, mark)
		}
		if g, ok := ValueGoals[r.Name]; ok {
			better, cmp := r.Value <= g, "≤"
			if r.Unit == "tasks/s" {
				better, cmp = r.Value >= g, "≥"
			}
			mark := "holds"
			if !better {
				mark = "MISSED"
			}
			goal = fmt.Sprintf("%s %.3g %s (%s)", cmp, g, r.Unit, mark)
		}
		if r.Name == r.Baseline {
			goal = "baseline"
		}
		fmt.Fprintf(w, "%-22s %14.1f %-8s %-22s %8.3f  %s\n", r.Name, r.Value, r.Unit, r.Baseline, r.Ratio, goal)
	}
	fmt.Fprintln(w, "ns/op, us, ms and MB rows: lower is better, ratio = value / baseline; tasks/s rows: higher is better.")
}
