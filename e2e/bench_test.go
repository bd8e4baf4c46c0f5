//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/processional/processional/internal/bench"
)

// The benchmarks measure the same pairs as `processional bench`, each
// against its baseline in the same run; b.N is the operations per round.
// Each reports the pair's figure as ns/op (and tasks/s for a throughput)
// and its ratio to the baseline (x-<baseline>).

func BenchmarkGoroutineTask(b *testing.B)    { benchPair(b, "goroutine_task") }
func BenchmarkThreadInvoke(b *testing.B)     { benchPair(b, "thread_invoke") }
func BenchmarkInvokeRTT(b *testing.B)        { benchPair(b, "invoke_rtt") }
func BenchmarkPipelined(b *testing.B)        { benchPair(b, "pipelined") }
func BenchmarkSpawnFirstResult(b *testing.B) { benchPair(b, "spawn_first_result") }
func BenchmarkOrphanExit(b *testing.B)       { benchPair(b, "orphan_exit") }
func BenchmarkWorkerLost(b *testing.B)       { benchPair(b, "worker_lost") }
func BenchmarkLeaseTeardown(b *testing.B)    { benchPair(b, "lease_teardown") }
func BenchmarkServerInvokeRTT(b *testing.B)  { benchPair(b, "server_invoke_rtt") }
func BenchmarkWorkerStart(b *testing.B)      { benchPair(b, "worker_start_ms") }

func benchPair(b *testing.B, name string) {
	var pair *bench.Pair
	for _, p := range bench.Pairs() {
		if p.Name == name {
			pair = p
		}
	}
	if pair == nil {
		b.Fatalf("no pair %q", name)
	}
	env := bench.NewEnv(binProcessional)
	defer env.Close()
	rows, err := pair.Run(context.Background(), env, 3, max(b.N, 1))
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range rows {
		switch r.Name {
		case pair.Name:
			switch r.Unit {
			case "tasks/s":
				b.ReportMetric(r.Value, "tasks/s")
				b.ReportMetric(1e9/r.Value, "ns/op")
			case "ms":
				b.ReportMetric(r.Value*1e6, "ns/op")
			default:
				b.ReportMetric(r.Value, "ns/op")
			}
			b.ReportMetric(r.Ratio, "x-"+r.Baseline)
		case pair.Baseline:
		default: // a reference row, or a figure measured with the pair
			if r.Name != r.Baseline {
				b.ReportMetric(r.Ratio, r.Name+"-x-"+r.Baseline)
			}
		}
	}
}

// TestBenchJSONContract checks the fields and row names that other tools
// read from `processional bench --json`.
func TestBenchJSONContract(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns the bench")
	}
	// Rounds of 2% of the operations take about 6 s on an idle machine;
	// the bound is for a machine also compiling and testing the other
	// packages. Past it the bench gets SIGQUIT, so that its goroutines'
	// stacks, and its progress lines, say which pair hung where.
	bound := 4 * time.Minute
	if d, ok := t.Deadline(); ok && time.Until(d)-30*time.Second < bound {
		bound = time.Until(d) - 30*time.Second // room for the dump, within go test -timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	cmd := exec.CommandContext(ctx, binProcessional, "bench", "--json", "--rounds", "1", "--scale", "0.02")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("processional bench --json: %v\n%s\nstderr:\n%s", err, out, stderr.Bytes())
	}
	want := map[string]bool{
		"goroutine_chan": true, "goroutine_task": true, "locked_thread_chan": true, "thread_invoke": true,
		"nats_rtt": true, "invoke_rtt": true, "unix_rtt": true, "nats_invoke_rtt": true, "lane_rtt": true,
		"nats_pipelined": true, "pipelined": true, "pipelined_nats": true,
		"child_start": true, "spawn_first_result": true,
		"lease": true, "orphan_exit": true, "orphan_exit_pipe": true, "worker_lost": true, "lease_teardown": true,
		"server_invoke_rtt": true, "server_invoke_rtt_unix": true, "proxy_call": true,
		"shm_10mb": true, "read_10mb": true, "nats_chunks_10mb": true, "copy_10mb": true, "result_10mb": true, "floats_10mb": true,
		"codec_structs_10mb": true, "structs_10mb": true, "copy_10mb_remote": true, "shm_cold_10mb": true, "copy_10mb_nats": true, "result_10mb_nats": true, "floats_10mb_nats": true,
		"floats_10mb_first": true, "structs_10mb_first": true, "copy_10mb_first": true, "result_10mb_first": true, "copy_10mb_remote_first": true, "shm_cold_10mb_first": true,
		"nats_cluster_rtt": true, "cluster_invoke_rtt": true, "nats_pool_map": true, "pool_map": true,
		"worker_start_ms": true, "child_rss_mb": true, "worker_rss_mb": true, "lean_worker_rss_mb": true,
		"nats_load": true, "load": true, "nats_load_p50_us": true, "load_p50_us": true, "nats_load_p99_us": true, "load_p99_us": true,
		"stream_items": true, "stream_window_mb": true, "stream_backpressure_mb": true, "stream_first_item": true,
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if len(row) != 6 {
			t.Errorf("row %v: want exactly name, value, unit, baseline, baseline_value, ratio", row)
		}
		for _, field := range []string{"name", "value", "unit", "baseline", "baseline_value", "ratio"} {
			if _, ok := row[field]; !ok {
				t.Errorf("row %v lacks %q", row, field)
			}
		}
		name, _ := row["name"].(string)
		if !want[name] {
			t.Errorf("unexpected row %q", name)
		}
		delete(want, name)
		if v, _ := row["value"].(float64); v <= 0 {
			t.Errorf("row %q: value %v", name, row["value"])
		}
		if r, _ := row["ratio"].(float64); r <= 0 {
			t.Errorf("row %q: ratio %v", name, row["ratio"])
		}
	}
	for name := range want {
		t.Errorf("row %q missing", name)
	}
}
