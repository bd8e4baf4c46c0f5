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
// subscribes; and the resident memory of each once idle.
//
// What is resident (measured with /proc/<pid>/smaps and pagemap, the
// processional binary of 31 MB): of a worker's ~15 MB,
// ~12 MB are the binary's own pages (text 5.5, pclntab 3.4, rodata 2.6),
// shared with every process that runs it; ~1.3 MB are libc's in a cgo
// build; ~2 MB are anonymous (heap and stacks). An idle worker never
// collects (its heap stays under 4 MB): making it collect (GOGC=25,
// GOMEMLIMIT, debug.FreeOSMemory after the hello) adds 0.6 to 2.4 MB, the
// collector's own pages. What lowers it: a static build (CGO_ENABLED=0,
// -1.6 MB), and a binary that does not link nats-server (a worker-only
// binary: 11.1 MB, 9.4 MB static).
func workerPair() *Pair {
	return &Pair{
		Name: "worker_start_ms", Baseline: "child_start", Unit: "ms", BaselineUnit: "ns/op", N: 3, Chunks: 3,
		Also: []Figure{{Name: "worker_rss_mb", Baseline: "child_rss_mb", Unit: "MB"}},
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
			time.Sleep(settle)
			for _, s := range slaves {
				mb, err := rssMB(s.PID())
				if err != nil {
					return 0, err
				}
				e.record("worker_rss_mb", mb)
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
