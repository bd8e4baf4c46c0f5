package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/worker"
)

func TestMain(m *testing.M) {
	// The tests that spawn workers and baseline children spawn this
	// binary: it serves, or does its child's part, and exits.
	if worker.Main() || ChildMain() {
		return
	}
	proctest.NoRaceExitSleep()
	goleak.VerifyTestMain(m)
}

// The local pairs need no child process: measure them for real, briefly.
func TestRunLocalPairs(t *testing.T) {
	rows, err := Run(context.Background(), Options{Only: []string{"goroutine_task", "thread_invoke"}, Rounds: 1, Scale: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, r := range rows {
		names = append(names, r.Name)
		if r.Value <= 0 || r.BaselineValue <= 0 || r.Ratio != r.Value/r.BaselineValue {
			t.Errorf("row %+v: want positive figures and ratio = value / baseline_value", r)
		}
	}
	if got := strings.Join(names, ","); got != "goroutine_chan,goroutine_task,locked_thread_chan,thread_invoke" {
		t.Fatalf("rows %s", got)
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, rows); err != nil {
		t.Fatal(err)
	}
	var first map[string]any
	if err := json.Unmarshal(bytes.SplitN(buf.Bytes(), []byte("\n"), 2)[0], &first); err != nil || len(first) != 6 {
		t.Fatalf("JSON row %s: %v", buf.String(), err)
	}
	buf.Reset()
	WriteTable(&buf, rows)
	if !strings.Contains(buf.String(), "≤ 3") {
		t.Fatalf("table lacks the goals:\n%s", buf.String())
	}
}

func TestUnknownRow(t *testing.T) {
	_, err := Run(context.Background(), Options{Only: []string{"nope"}})
	if err == nil || !strings.Contains(err.Error(), `unknown row "nope"`) {
		t.Fatalf("err = %v, want it to name the row", err)
	}
	for _, known := range []string{"invoke_rtt", "lane_rtt", "nats_invoke_rtt", "orphan_exit_pipe"} {
		if !strings.Contains(err.Error(), known) {
			t.Errorf("err = %v, want it to list %s among the known rows", err, known)
		}
	}
}

// --only keeps the whole pair a row is measured with, derived rows too,
// and a baseline keeps the pairs against it unless it is a row some pair
// measures: invoke_rtt is shm_10mb's baseline, but keeps its own pair
// only.
func TestOnlySelectsThePair(t *testing.T) {
	for row, want := range map[string]string{
		"invoke_rtt": "invoke_rtt", "unix_rtt": "invoke_rtt",
		"lane_rtt": "invoke_rtt", "nats_invoke_rtt": "invoke_rtt",
		"orphan_exit_pipe": "orphan_exit", "proxy_call": "proxy_call", "pipelined": "pipelined", "pipelined_nats": "pipelined",
		"shm_10mb": "shm_10mb", "read_10mb": "shm_10mb", "worker_rss_mb": "worker_start_ms",
		"nats_rtt":       "invoke_rtt,server_invoke_rtt,proxy_call,stream_first_item",
		"lease":          "orphan_exit,worker_lost,lease_teardown",
		"child_rss_mb":   "worker_start_ms",
		"nats_pipelined": "pipelined,stream_items",
		"nats_pool_map":  "pool_map",
		"copy_10mb":      "copy_10mb", "copy_10mb_first": "copy_10mb_first",
		"codec_structs_10mb": "structs_10mb,structs_10mb_first",
		"nats_chunks_10mb":   "copy_10mb,result_10mb,floats_10mb,copy_10mb_remote,shm_cold_10mb,copy_10mb_nats,result_10mb_nats,floats_10mb_nats,floats_10mb_first,copy_10mb_first,result_10mb_first,copy_10mb_remote_first,shm_cold_10mb_first",
	} {
		var got []string
		for _, p := range Pairs() {
			if p.selected([]string{row}) {
				got = append(got, p.Name)
			}
		}
		if strings.Join(got, ",") != want {
			t.Errorf("--only %s keeps %v, want %s", row, got, want)
		}
	}
}

// A run prints no row name twice: every row but a shared baseline is
// measured, derived or recorded by one pair only, and each pair's
// derived rows name sides it times.
func TestRowNamesUnique(t *testing.T) {
	owner := map[string]string{}
	baselines := map[string]bool{}
	for _, p := range Pairs() {
		baselines[p.Baseline] = true
		names := append([]string{p.Name}, p.Extra...)
		for _, d := range p.Derived {
			names = append(names, d.Name)
			sides := append([]string{p.Baseline, p.Name}, p.Extra...)
			if !slices.Contains(sides, d.Of) || !slices.Contains(sides, d.Over) {
				t.Errorf("pair %s: derived row %s of %s over %s: not sides of the pair", p.Name, d.Name, d.Of, d.Over)
			}
		}
		for _, f := range p.Also {
			names = append(names, f.Name)
			baselines[f.Baseline] = true
		}
		for _, n := range names {
			if o, ok := owner[n]; ok {
				t.Errorf("row %s printed by pair %s and by pair %s", n, o, p.Name)
			}
			owner[n] = p.Name
		}
	}
	for _, n := range []string{"lane_rtt", "nats_invoke_rtt", "orphan_exit_pipe"} {
		if owner[n] == "" {
			t.Errorf("no pair prints %s", n)
		}
	}
	for _, goals := range []map[string]float64{Goals, ValueGoals} {
		for n := range goals {
			if owner[n] == "" {
				t.Errorf("a goal for %s, which no pair prints", n)
			}
		}
	}
}

// A derived row is one side's median against another's, from the same
// rounds, after the timed rows; its baseline is that other side's row.
func TestDerivedRow(t *testing.T) {
	side := func(d time.Duration) func(context.Context, *Env, int) (time.Duration, error) {
		return func(_ context.Context, _ *Env, n int) (time.Duration, error) { return time.Duration(n) * d, nil }
	}
	p := &Pair{
		Name: "measured", Baseline: "base", Unit: "ns/op", N: 10,
		Extra:   []string{"floor", "other"},
		Derived: []Derived{{Name: "measured_vs_floor", Of: "measured", Over: "floor"}},
		base:    side(1000), measure: side(400),
		extra: []func(context.Context, *Env, int) (time.Duration, error){side(250), side(900)},
	}
	if !p.selected([]string{"measured_vs_floor"}) {
		t.Fatal("--only measured_vs_floor leaves out its pair")
	}
	e := NewEnv("")
	defer e.Close()
	rows, err := p.Run(context.Background(), e, 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{Name: "base", Value: 1000, Unit: "ns/op", Baseline: "base", BaselineValue: 1000, Ratio: 1},
		{Name: "measured", Value: 400, Unit: "ns/op", Baseline: "base", BaselineValue: 1000, Ratio: 0.4},
		{Name: "floor", Value: 250, Unit: "ns/op", Baseline: "base", BaselineValue: 1000, Ratio: 0.25},
		{Name: "other", Value: 900, Unit: "ns/op", Baseline: "base", BaselineValue: 1000, Ratio: 0.9},
		{Name: "measured_vs_floor", Value: 400, Unit: "ns/op", Baseline: "floor", BaselineValue: 250, Ratio: 1.6},
	}
	if !slices.Equal(rows, want) {
		t.Fatalf("rows\n%v\nwant\n%v", rows, want)
	}
	p.Derived[0].Over = "nope"
	if _, err := p.Run(context.Background(), e, 1, 10); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("a derived row over no side: err = %v", err)
	}
}

// The table prints the new rows' goals: lane_rtt against unix_rtt,
// nats_invoke_rtt and orphan_exit_pipe against theirs, pipelined as a
// throughput.
func TestTableGoals(t *testing.T) {
	rows := []Row{
		{Name: "nats_rtt", Value: 100, Unit: "ns/op", Baseline: "nats_rtt", BaselineValue: 100, Ratio: 1},
		{Name: "invoke_rtt", Value: 40, Unit: "ns/op", Baseline: "nats_rtt", BaselineValue: 100, Ratio: 0.4},
		{Name: "unix_rtt", Value: 35, Unit: "ns/op", Baseline: "nats_rtt", BaselineValue: 100, Ratio: 0.35},
		{Name: "nats_invoke_rtt", Value: 120, Unit: "ns/op", Baseline: "nats_rtt", BaselineValue: 100, Ratio: 1.2},
		{Name: "lane_rtt", Value: 40, Unit: "ns/op", Baseline: "unix_rtt", BaselineValue: 35, Ratio: 40.0 / 35},
		{Name: "pipelined", Value: 160, Unit: "tasks/s", Baseline: "nats_pipelined", BaselineValue: 100, Ratio: 1.6},
		{Name: "orphan_exit_pipe", Value: 60, Unit: "ms", Baseline: "lease", BaselineValue: 1000, Ratio: 0.06},
	}
	var buf bytes.Buffer
	WriteTable(&buf, rows)
	for row, goal := range map[string]string{
		"invoke_rtt":       "≤ 0.5 (holds)",
		"lane_rtt":         "≤ 1.3 (holds)",
		"nats_invoke_rtt":  "≤ 1.05 (MISSED)",
		"pipelined":        "≥ 1.5 (holds)",
		"orphan_exit_pipe": "≤ 0.05 (MISSED)",
	} {
		var line string
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.HasPrefix(l, row+" ") {
				line = l
			}
		}
		if !strings.HasSuffix(line, goal) {
			t.Errorf("table line of %s: %q, want it to end with %q", row, line, goal)
		}
	}
}
