package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
)

// settle is how long a fresh worker or child idles before its resident
// memory is read: long enough for what it starts after its hello (the
// first heartbeat, the micro service's stats) to have run.
const settle = 300 * time.Millisecond

// workerPair measures a spawned worker's start, exec to hello, against a
// bare child of the same binary that connects to the same NATS server and
// subscribes; and the resident memory of each once idle, and that of the
// worker-only binary's workers spawned alike (lean_worker_rss_mb), which
// differs from the full binary's by the pages of what it does not link.
// What those pages are is in docs/benchmark.md.
func workerPair() *Pair {
	return &Pair{
		Name: "worker_start_ms", Baseline: "child_start", Unit: "ms", BaselineUnit: "ns/op", N: 3, Chunks: 3,
		Also: []Figure{
			{Name: "worker_rss_mb", Baseline: "child_rss_mb", Unit: "MB"},
			{Name: "lean_worker_rss_mb", Baseline: "child_rss_mb", Unit: "MB", Optional: true},
		},
		setup: func(ctx context.Context, e *Env) error { return e.findLean(ctx) },
		base: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			var total time.Duration
			var children []*child
			defer func() {
				for _, c := range children {
					c.kill()
				}
			}()
			for range n {
				c, d, err := e.startEcho(ctx, "bench.start."+wire.NewID("b"))
				if err != nil {
					return 0, err
				}
				children = append(children, c)
				total += d
			}
			time.Sleep(settle)
			for _, c := range children {
				mb, err := rssMB(c.cmd.Process.Pid)
				if err != nil {
					return 0, err
				}
				e.record("child_rss_mb", mb)
			}
			return total, nil
		},
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			m, err := e.master(ctx)
			if err != nil {
				return 0, err
			}
			var total time.Duration
			var slaves []*master.Slave
			defer func() {
				for _, s := range slaves {
					s.Close()
				}
			}()
			for range n {
				// Spawn subscribes to the hello, execs, and returns on the
				// hello.
				start := time.Now()
				s, err := m.Spawn(ctx, e.spawnOpts()...)
				if err != nil {
					return 0, err
				}
				total += time.Since(start)
				slaves = append(slaves, s)
			}
			// The lean workers start untimed, and settle with the others.
			if e.lean.path != "" {
				for range n {
					s, err := m.Spawn(ctx, master.WithBinary(e.lean.path), master.WithOutput(os.Stderr, os.Stderr))
					if err != nil {
						return 0, fmt.Errorf("lean worker %s: %w", e.lean.path, err)
					}
					slaves = append(slaves, s)
				}
			}
			time.Sleep(settle)
			for i, s := range slaves {
				mb, err := rssMB(s.PID())
				if err != nil {
					return 0, err
				}
				if i < n {
					e.record("worker_rss_mb", mb)
				} else {
					e.record("lean_worker_rss_mb", mb)
				}
			}
			return total, nil
		},
	}
}

// rssMB reads a process's resident set size (VmRSS), in MB (2^20 bytes).
func rssMB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("pid %d: VmRSS %q: %v", pid, rest, err)
			}
			return kb / 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("pid %d: no VmRSS in its status", pid)
}
