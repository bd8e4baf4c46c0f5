package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/internal/serveraddr"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
)

// leaseBase is lease, the baseline of the lifetime pairs: the lease as
// it lapses in practice, measured in the same run, not the configured
// length. It is orphan_exit with every fast path off: a holder master on
// the bench's NATS server (which outlives it) spawns a worker without the
// lane and without the parent-death signal, sets a call running, and is
// SIGKILLed; the time until its worker is gone is the time the worker
// takes to notice by missed heartbeats alone, from the kill: what the
// lease costs when nothing faster tells.
func leaseBase(ctx context.Context, e *Env, n int) (time.Duration, error) {
	m, err := e.master(ctx)
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for range n {
		d, err := orphanExit(ctx, e.binary, "PROCESSIONAL_BENCH_URL="+m.URL(), "PROCESSIONAL_BENCH_TOKEN="+m.Token(),
			master.EnvLane+"=off", master.EnvParentDeathSignal+"=off")
		if err != nil {
			return 0, fmt.Errorf("the lease-only holder: %w", err)
		}
		// Its last heartbeat came at most an interval (a quarter of the
		// lease) before the kill: a worker gone much sooner heard of the
		// death some other way, and this would be no lease.
		if d < master.DefaultLease/2 {
			return 0, fmt.Errorf("the lease-only holder's worker was gone %s after its master's death, sooner than its lease (%s) can lapse: it did not go by the lease", d, master.DefaultLease)
		}
		total += d
	}
	return total, nil
}

// orphanPair times how long a worker outlives its SIGKILLed master
// (orphan_exit), and the same with the master's workers spawned without
// the parent-death signal, so that only the lane's EOF tells them
// (orphan_exit_pipe), in the same alternating rounds.
func orphanPair() *Pair {
	return &Pair{
		Name: "orphan_exit", Baseline: "lease", Unit: "ms", N: 3, Chunks: 3,
		Extra: []string{"orphan_exit_pipe"},
		base:  leaseBase,
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			return orphanExits(ctx, e.binary, n)
		},
		extra: []func(context.Context, *Env, int) (time.Duration, error){
			func(ctx context.Context, e *Env, n int) (time.Duration, error) {
				return orphanExits(ctx, e.binary, n, master.EnvParentDeathSignal+"=off")
			},
		},
	}
}

// orphanExits runs orphanExit n times, with env added to the master
// process's environment, and returns the total.
func orphanExits(ctx context.Context, binary string, n int, env ...string) (time.Duration, error) {
	var total time.Duration
	for range n {
		d, err := orphanExit(ctx, binary, env...)
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

// orphanExit starts a master process (with env added to its environment)
// that spawns a worker, kills the master with SIGKILL, and times until
// the worker is gone.
func orphanExit(ctx context.Context, binary string, env ...string) (time.Duration, error) {
	line, stop, err := startReporter(ctx, binary, "the master's worker pid", append([]string{envChild + "=" + modeHolder}, env...)...)
	if err != nil {
		return 0, err
	}
	defer stop()
	pid, err := strconv.Atoi(line)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	stop() // SIGKILL: the master only, its worker has a group of its own
	for !proctest.Gone(pid, 0) {
		if time.Since(start) > 10*master.DefaultLease {
			killPID(pid)
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
	if err := killPID(s.PID()); err != nil {
		return 0, err
	}
	_, err := pending.Wait(ctx)
	d := time.Since(start)
	if !errors.Is(err, bus.ErrWorkerLost) {
		return 0, fmt.Errorf("the pending call: %v, want ErrWorkerLost", err)
	}
	return d, nil
}

// startReporter starts binary in a process group of its own, with env
// added, and returns the first line it prints (what, for errors), and a
// stop that kills the group with SIGKILL and reaps it (idempotent).
func startReporter(ctx context.Context, binary, what string, env ...string) (line string, stop func(), err error) {
	cmd := exec.CommandContext(ctx, binary)
	cmd.Env = append(cmd.Environ(), env...)
	cmd.Stderr = os.Stderr // a child that fails says why
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := startCmd(cmd); err != nil {
		return "", nil, err
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			killGroup(cmd.Process.Pid)
			cmd.Wait()
		})
	}
	line, err = bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("%s: nothing printed: %v", what, err)
	}
	return strings.TrimSpace(line), stop, nil
}

// serverChild is a `processional server` child process.
type serverChild struct {
	*child
	url, socket, token string
}

// startServer runs the binary's server command and reads its address.
func (e *Env) startServer(ctx context.Context) error {
	if e.server != nil {
		return nil
	}
	dir, err := os.MkdirTemp("", "processional-bench-server-")
	if err != nil {
		return err
	}
	e.serverDir = dir
	cmd := exec.Command(e.binary, "server", "--socket", filepath.Join(dir, "s"))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	c, err := startProc(cmd)
	if err != nil {
		return err
	}
	r := bufio.NewReader(out)
	addr, err := serveraddr.Read(r)
	if err != nil {
		c.kill()
		return err
	}
	e.server = &serverChild{child: c, url: addr.URL, socket: addr.Socket, token: addr.Token}
	go io.Copy(io.Discard, r) // whatever else it prints
	return nil
}

func serverPair() *Pair {
	return &Pair{
		Name: "server_invoke_rtt", Baseline: "nats_rtt", Unit: "ns/op", N: 4_000, Chunks: 20,
		Extra: []string{"server_invoke_rtt_unix"},
		setup: func(ctx context.Context, e *Env) error {
			if err := e.rttSetup(ctx); err != nil {
				return err
			}
			if err := e.startServer(ctx); err != nil {
				return err
			}
			var err error
			if e.viaTCP == nil {
				if e.viaTCP, err = master.Connect(ctx, e.server.url, master.WithToken(e.server.token)); err != nil {
					return err
				}
			}
			if e.viaUnix == nil {
				if e.viaUnix, err = master.Connect(ctx, e.server.socket, master.WithToken(e.server.token)); err != nil {
					return err
				}
			}
			return nil
		},
		base: natsRTT,
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			return invokeLoop(ctx, e.viaTCP, n)
		},
		extra: []func(context.Context, *Env, int) (time.Duration, error){
			func(ctx context.Context, e *Env, n int) (time.Duration, error) {
				return invokeLoop(ctx, e.viaUnix, n)
			},
		},
	}
}

func invokeLoop(ctx context.Context, s *master.Slave, n int) (time.Duration, error) {
	start := time.Now()
	for range n {
		if _, err := master.Invoke(ctx, s, builtin.Echo, payload); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func leaseTeardownPair() *Pair {
	return &Pair{
		Name: "lease_teardown", Baseline: "lease", Unit: "ms", N: 2, Chunks: 2,
		setup: func(ctx context.Context, e *Env) error { return e.startServer(ctx) },
		base:  leaseBase,
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			var total time.Duration
			for range n {
				d, err := leaseTeardown(ctx, e)
				if err != nil {
					return 0, err
				}
				total += d
			}
			return total, nil
		},
	}
}

// leaseTeardown starts a master process connected to the server, makes
// sure the server holds its lease, renewed by a heartbeat seen on the
// wire, kills it with SIGKILL, and times until the server has dropped
// its lease.
func leaseTeardown(ctx context.Context, e *Env) (time.Duration, error) {
	nc, err := nats.Connect(e.server.url, nats.Token(e.server.token))
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	// The client's heartbeats to the server go by NATS: a raw subscriber
	// sees them. Subscribed before the client starts, so that none is
	// missed.
	beats := make(chan *nats.Msg, 64)
	hbSubject := wire.HeartbeatSubject(wire.DefaultServerID)
	sub, err := nc.ChanSubscribe(hbSubject, beats)
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return 0, err
	}
	id, stop, err := startReporter(ctx, e.binary, "the client's master id", envChild+"="+modeClient,
		"PROCESSIONAL_BENCH_URL="+e.server.url, "PROCESSIONAL_BENCH_TOKEN="+e.server.token)
	if err != nil {
		return 0, err
	}
	defer stop()
	leases := func() (map[string]int64, error) {
		msg, err := nc.Request(wire.ControlSubject(wire.DefaultServerID, "leases"), nil, 5*time.Second)
		if err != nil {
			return nil, err
		}
		var leases map[string]int64
		if err := json.Unmarshal(msg.Data, &leases); err != nil {
			return nil, fmt.Errorf("the server's leases %q: %v", msg.Data, err)
		}
		return leases, nil
	}
	// Before the kill, the lease must be live: a heartbeat of this master
	// on the wire after it reported (it renews a lease its calls already
	// started), and then the server listing its lease. Otherwise what
	// follows would time the teardown of a lease never held.
	reported := time.Now()
	if err := awaitHeartbeat(ctx, beats, hbSubject, id, reported.Add(10*master.DefaultLease)); err != nil {
		return 0, err
	}
	sub.Unsubscribe()
	held, err := leases()
	if err != nil {
		return 0, err
	}
	if _, ok := held[id]; !ok {
		return 0, fmt.Errorf("the server holds no lease of master %s after its heartbeat (leases: %v): nothing to tear down", id, held)
	}
	start := time.Now()
	stop()
	for {
		held, err := leases()
		if err != nil {
			return 0, err
		}
		if _, ok := held[id]; !ok {
			return time.Since(start), nil
		}
		if time.Since(start) > 10*master.DefaultLease {
			return 0, fmt.Errorf("the server still holds the killed master's lease after %s", time.Since(start))
		}
		time.Sleep(time.Millisecond)
	}
}

// awaitHeartbeat waits until beats, a subscription to msgSubject,
// carries a heartbeat of master id, or deadline.
func awaitHeartbeat(ctx context.Context, beats <-chan *nats.Msg, msgSubject, id string, deadline time.Time) error {
	timeout := time.NewTimer(time.Until(deadline))
	defer timeout.Stop()
	var c wire.Call
	for {
		select {
		case msg := <-beats:
			if wire.DecodeCall(msg.Data, &c) == nil && c.Kind == wire.KindHeartbeat && c.Master == id {
				return nil
			}
		case <-timeout.C:
			return fmt.Errorf("no heartbeat of master %s on %s in time: its lease is not renewed", id, msgSubject)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
