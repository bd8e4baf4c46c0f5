package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/master"
)

// leaseBase is the baseline of the lifetime pairs: the lease, the time a
// worker would take to notice a death without the fast paths.
func leaseBase(_ context.Context, _ *Env, n int) (time.Duration, error) {
	return time.Duration(n) * master.DefaultLease, nil
}

func orphanPair() *Pair {
	return &Pair{
		Name: "orphan_exit", Baseline: "lease", Unit: "ms", N: 3, Chunks: 3,
		base: leaseBase,
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			var total time.Duration
			for range n {
				d, err := orphanExit(ctx, e.binary)
				if err != nil {
					return 0, err
				}
				total += d
			}
			return total, nil
		},
	}
}

// orphanExit starts a master process that spawns a worker, kills the
// master with SIGKILL, and times until the worker is gone.
func orphanExit(ctx context.Context, binary string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, binary)
	cmd.Env = append(cmd.Environ(), envChild+"="+modeHolder)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer cmd.Wait()
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("the master printed no worker pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	cmd.Process.Kill()
	for !proctest.Gone(pid, 0) {
		if time.Since(start) > 10*master.DefaultLease {
			syscall.Kill(pid, syscall.SIGKILL)
			return 0, fmt.Errorf("worker %d outlived its master by %s", pid, time.Since(start))
		}
		time.Sleep(100 * time.Microsecond)
	}
	return time.Since(start), nil
}

func workerLostPair() *Pair {
	return &Pair{
		Name: "worker_lost", Baseline: "lease", Unit: "ms", N: 3, Chunks: 3,
		base: leaseBase,
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			m, err := e.master(ctx)
			if err != nil {
				return 0, err
			}
			var total time.Duration
			for range n {
				s, err := m.Spawn(ctx, e.spawnOpts()...)
				if err != nil {
					return 0, err
				}
				d, err := workerLost(ctx, s)
				s.Close()
				if err != nil {
					return 0, err
				}
				total += d
			}
			return total, nil
		},
	}
}

// workerLost kills a worker with a call pending on it and times until the
// call fails.
func workerLost(ctx context.Context, s *master.Slave) (time.Duration, error) {
	pending := master.Schedule(ctx, s, builtin.Sleep, time.Hour)
	// Make sure the sleep runs: a concurrent call answers after it started.
	if _, err := master.Thread(ctx, s, builtin.Getpid, struct{}{}).Wait(ctx); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := syscall.Kill(s.PID(), syscall.SIGKILL); err != nil {
		return 0, err
	}
	_, err := pending.Wait(ctx)
	d := time.Since(start)
	if !errors.Is(err, bus.ErrWorkerLost) {
		return 0, fmt.Errorf("the pending call: %v, want ErrWorkerLost", err)
	}
	return d, nil
}
