package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
	"github.com/processional/processional/shm"
)

// Inc is the workload of the local pairs: the smallest function that
// still takes an argument and returns a result.
var Inc = bus.Register("bench.inc", func(_ context.Context, x int) (int, error) { return x + 1, nil })

// payload is the argument of the remote pairs: 32 bytes, like the
// Unix-socket ping-pong's message.
var payload = []byte("0123456789abcdef0123456789abcdef")

// Env holds what the pairs share: a master, a spawned worker, the
// baseline children. It is started lazily and stopped by Close.
type Env struct {
	binary    string
	m         *master.Master
	slave     *master.Slave // spawned by m, with the lane (the default)
	natsSlave *master.Slave // spawned by m WithoutLane: calls by NATS
	remote    *master.Slave // spawned by m WithoutLane in another shm domain: as on another host

	echo    *child // raw NATS responder
	subject string

	unix     *child
	unixConn net.Conn
	unixDir  string

	server    *serverChild // a `processional server`
	serverDir string
	viaTCP    *master.Slave // connected to server over TCP
	viaUnix   *master.Slave // and over its socket

	counter *master.Ref // a builtin.Counter on slave

	acker      *child // raw receiver of chunks, acknowledging requests
	ackSubject string
	big        []byte      // 10 MB
	bigSum     uint64      // sum(big)
	bigShm     *shm.Buffer // 10 MB of shared memory
	points     []Point     // about 10 MB of msgpack

	cluster *clusterEnv

	pool        *master.Pool // poolMembers `processional worker --pool` processes
	poolWorkers []*child
	poolEchoes  []*child // as many raw responders, in one queue group
	poolSubject string   // theirs

	load         *Load  // master processes connected to server's NATS
	loadEcho     *child // raw responder on server's NATS
	loadRawTo    string // its subject
	loadWorker   *child // `processional worker` on server's NATS, which load calls
	loadWorkerID string // its id

	lean leanWorker // the worker-only binary

	recorded map[string][]float64 // figures the sides record, by row
	progress io.Writer            // notes on what the pairs found, if set

	release func() // the hold on the fork thread, for the children
}

// record notes a figure a side measured besides its time, for the pair's
// Also rows.
func (e *Env) record(name string, v float64) {
	if e.recorded == nil {
		e.recorded = map[string][]float64{}
	}
	e.recorded[name] = append(e.recorded[name], v)
}

// NewEnv returns an environment that spawns binary as worker and baseline
// child; its main must call worker.Main and ChildMain first.
func NewEnv(binary string) *Env { return &Env{binary: binary, release: holdFork()} }

// Close stops everything the environment started. It is idempotent.
func (e *Env) Close() {
	if e.load != nil {
		e.load.Close()
		e.load = nil
	}
	for _, c := range []*child{e.loadEcho, e.loadWorker} {
		if c != nil {
			c.kill()
		}
	}
	e.loadEcho, e.loadWorker = nil, nil
	for _, s := range []*master.Slave{e.viaTCP, e.viaUnix} {
		if s != nil {
			s.Close()
		}
	}
	e.viaTCP, e.viaUnix = nil, nil
	if e.server != nil {
		e.server.kill()
		e.server = nil
	}
	if e.serverDir != "" {
		os.RemoveAll(e.serverDir)
		e.serverDir = ""
	}
	if e.unixConn != nil {
		e.unixConn.Close()
		e.unixConn = nil
	}
	if e.unix != nil {
		e.unix.kill()
		e.unix = nil
	}
	if e.unixDir != "" {
		os.RemoveAll(e.unixDir)
		e.unixDir = ""
	}
	if e.echo != nil {
		e.echo.kill()
		e.echo = nil
	}
	e.cluster.close()
	e.cluster = nil
	if e.pool != nil {
		e.pool.Close()
		e.pool = nil
	}
	for _, c := range append(e.poolWorkers, e.poolEchoes...) {
		c.kill()
	}
	e.poolWorkers, e.poolEchoes = nil, nil
	if e.acker != nil {
		e.acker.kill()
		e.acker = nil
	}
	if e.bigShm != nil {
		e.bigShm.Close()
		e.bigShm = nil
	}
	if e.counter != nil {
		e.counter.Close()
		e.counter = nil
	}
	if e.slave != nil {
		e.slave.Close()
		e.slave = nil
	}
	if e.natsSlave != nil {
		e.natsSlave.Close()
		e.natsSlave = nil
	}
	if e.remote != nil {
		e.remote.Close()
		e.remote = nil
	}
	if e.m != nil {
		e.m.Close()
		e.m = nil
	}
	if e.lean.dir != "" {
		os.RemoveAll(e.lean.dir)
		e.lean.dir = ""
	}
	if e.release != nil {
		e.release() // last: every child is reaped by now
	}
}

func (e *Env) master(ctx context.Context) (*master.Master, error) {
	if e.m == nil {
		m, err := master.New(ctx)
		if err != nil {
			return nil, err
		}
		e.m = m
	}
	return e.m, nil
}

func (e *Env) spawnOpts() []master.SpawnOption {
	return []master.SpawnOption{master.WithBinary(e.binary), master.WithOutput(os.Stderr, os.Stderr)}
}

func (e *Env) worker(ctx context.Context) error {
	if e.slave != nil {
		return nil
	}
	m, err := e.master(ctx)
	if err != nil {
		return err
	}
	s, err := m.Spawn(ctx, e.spawnOpts()...)
	if err != nil {
		return err
	}
	e.slave = s
	return nil
}

// startEcho starts a raw NATS responder child on the master's server and
// returns once its subscription is live, with the time that took.
func (e *Env) startEcho(ctx context.Context, subject string, env ...string) (*child, time.Duration, error) {
	m, err := e.master(ctx)
	if err != nil {
		return nil, 0, err
	}
	return e.startResponder(ctx, m.Conn(), m.URL(), m.Token(), subject, env...)
}

// startResponder starts a raw NATS responder child on the server at url,
// and returns once nc has heard that its subscription is live, with the
// time that took.
func (e *Env) startResponder(ctx context.Context, nc *nats.Conn, url, token, subject string, env ...string) (*child, time.Duration, error) {
	ready := nats.NewInbox()
	ch := make(chan *nats.Msg, 1)
	sub, err := nc.ChanSubscribe(ready, ch)
	if err != nil {
		return nil, 0, err
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return nil, 0, err
	}
	start := time.Now()
	c, err := startChild(e.binary, append([]string{envChild + "=" + modeNATS,
		"PROCESSIONAL_BENCH_URL=" + url, "PROCESSIONAL_BENCH_TOKEN=" + token,
		"PROCESSIONAL_BENCH_SUBJECT=" + subject, "PROCESSIONAL_BENCH_READY=" + ready}, env...)...)
	if err != nil {
		return nil, 0, err
	}
	select {
	case <-ch:
		return c, time.Since(start), nil
	case <-c.done:
		return nil, 0, fmt.Errorf("raw responder exited: %s", c.cmd.ProcessState)
	case <-time.After(30 * time.Second):
		c.kill()
		return nil, 0, errors.New("raw responder not ready within 30s")
	case <-ctx.Done():
		c.kill()
		return nil, 0, ctx.Err()
	}
}

func goroutinePair() *Pair {
	return &Pair{
		Name: "goroutine_task", Baseline: "goroutine_chan", Unit: "ns/op", N: 50_000, Chunks: 10,
		base: func(_ context.Context, _ *Env, n int) (time.Duration, error) {
			start := time.Now()
			for i := range n {
				ch := make(chan int, 1)
				go func() { ch <- i + 1 }()
				<-ch
			}
			return time.Since(start), nil
		},
		measure: func(ctx context.Context, _ *Env, n int) (time.Duration, error) {
			start := time.Now()
			for i := range n {
				if _, err := master.Go(ctx, func(context.Context) (int, error) { return i + 1, nil }).Wait(ctx); err != nil {
					return 0, err
				}
			}
			return time.Since(start), nil
		},
	}
}

func threadPair() *Pair {
	return &Pair{
		Name: "thread_invoke", Baseline: "locked_thread_chan", Unit: "ns/op", N: 20_000, Chunks: 10,
		base: func(_ context.Context, _ *Env, n int) (time.Duration, error) {
			in, out := make(chan int), make(chan int)
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				for x := range in {
					out <- x + 1
				}
			}()
			defer close(in)
			start := time.Now()
			for i := range n {
				in <- i
				<-out
			}
			return time.Since(start), nil
		},
		measure: func(ctx context.Context, _ *Env, n int) (time.Duration, error) {
			th := master.NewThread()
			defer th.Close()
			start := time.Now()
			for i := range n {
				if _, err := master.Invoke(ctx, th, Inc, i); err != nil {
					return 0, err
				}
			}
			return time.Since(start), nil
		},
	}
}

// rttPair times one small call at a time: Invoke of builtin.Echo to the
// default spawned worker (by the lane) against a raw nats.go
// request-reply, in the same alternating rounds as the Unix socket's
// ping-pong (unix_rtt) and the same Invoke to a worker spawned
// WithoutLane (nats_invoke_rtt). lane_rtt is invoke_rtt's figure against
// unix_rtt's.
func rttPair() *Pair {
	return &Pair{
		Name: "invoke_rtt", Baseline: "nats_rtt", Unit: "ns/op", N: 4_000, Chunks: 20,
		Extra:   []string{"unix_rtt", "nats_invoke_rtt"},
		Derived: []Derived{{Name: "lane_rtt", Of: "invoke_rtt", Over: "unix_rtt"}},
		setup: func(ctx context.Context, e *Env) error {
			if err := e.rttSetup(ctx); err != nil {
				return err
			}
			return e.natsWorker(ctx)
		},
		base: natsRTT,
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			return invokeLoop(ctx, e.slave, n)
		},
		extra: []func(context.Context, *Env, int) (time.Duration, error){
			func(_ context.Context, e *Env, n int) (time.Duration, error) {
				buf := make([]byte, len(payload))
				start := time.Now()
				for range n {
					if _, err := e.unixConn.Write(payload); err != nil {
						return 0, err
					}
					if _, err := io.ReadFull(e.unixConn, buf); err != nil {
						return 0, err
					}
				}
				return time.Since(start), nil
			},
			func(ctx context.Context, e *Env, n int) (time.Duration, error) {
				return invokeLoop(ctx, e.natsSlave, n)
			},
		},
	}
}

// rttSetup starts what the pairs against nats_rtt share: the default
// worker, the raw responder, the Unix socket's echoing child.
func (e *Env) rttSetup(ctx context.Context) error {
	if err := e.worker(ctx); err != nil {
		return err
	}
	if e.echo == nil {
		e.subject = "bench.echo." + wire.NewID("b")
		c, _, err := e.startEcho(ctx, e.subject)
		if err != nil {
			return err
		}
		e.echo = c
	}
	if e.unixConn == nil {
		return e.startUnix()
	}
	return nil
}

// natsWorker spawns, once, the worker nats_invoke_rtt calls: one
// spawned WithoutLane by the same master, whose calls go through the
// NATS server as they did before the lane.
func (e *Env) natsWorker(ctx context.Context) error {
	if e.natsSlave != nil {
		return nil
	}
	m, err := e.master(ctx)
	if err != nil {
		return err
	}
	s, err := m.Spawn(ctx, append(e.spawnOpts(), master.WithoutLane())...)
	if err != nil {
		return err
	}
	e.natsSlave = s
	return nil
}

// remoteOpts spawn a worker as if on another host: without the lane (its
// calls cross the NATS server) and in another shared-memory domain
// ($PROCESSIONAL_SHM_DOMAIN): buffers sent to it are copied, not shared.
func (e *Env) remoteOpts() []master.SpawnOption {
	return []master.SpawnOption{master.WithoutLane(), master.WithEnv("PROCESSIONAL_SHM_DOMAIN=" + shm.Domain() + ".remote")}
}

// remoteWorker spawns, once, the worker copy_10mb_remote calls.
func (e *Env) remoteWorker(ctx context.Context) error {
	if e.remote != nil {
		return nil
	}
	m, err := e.master(ctx)
	if err != nil {
		return err
	}
	s, err := m.Spawn(ctx, append(e.spawnOpts(), e.remoteOpts()...)...)
	if err != nil {
		return err
	}
	e.remote = s
	return nil
}

// natsRTT is nats_rtt: a raw nats.go request-reply at a time from the
// master's connection to the raw responder.
func natsRTT(_ context.Context, e *Env, n int) (time.Duration, error) {
	nc := e.m.Conn()
	start := time.Now()
	for range n {
		if _, err := nc.Request(e.subject, payload, 10*time.Second); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func (e *Env) startUnix() error {
	dir, err := os.MkdirTemp("", "processional-bench-")
	if err != nil {
		return err
	}
	e.unixDir = dir
	path := filepath.Join(dir, "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	defer l.Close()
	c, err := startChild(e.binary, envChild+"="+modeUnix, "PROCESSIONAL_BENCH_SOCKET="+path)
	if err != nil {
		return err
	}
	e.unix = c
	l.(*net.UnixListener).SetDeadline(time.Now().Add(30 * time.Second))
	conn, err := l.Accept()
	if err != nil {
		return err
	}
	e.unixConn = conn
	return nil
}

// pipelinedPair times 100,000 Scheduled echoes, all sent, then waited:
// on the lane (pipelined) and by NATS (pipelined_nats, to a worker
// spawned WithoutLane, where calls and replies go in batches), against
// as many raw pipelined requests.
func pipelinedPair() *Pair {
	return &Pair{
		Name: "pipelined", Baseline: "nats_pipelined", Unit: "tasks/s", N: 100_000,
		Extra: []string{"pipelined_nats"},
		setup: func(ctx context.Context, e *Env) error {
			if err := e.rttSetup(ctx); err != nil {
				return err
			}
			return e.natsWorker(ctx)
		},
		base: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			nc := e.m.Conn()
			inbox := nats.NewInbox()
			var got atomic.Int64
			all := make(chan struct{})
			sub, err := replySub(nc, inbox, func(*nats.Msg) {
				if got.Add(1) == int64(n) {
					close(all)
				}
			})
			if err != nil {
				return 0, err
			}
			defer sub.Unsubscribe()
			start := time.Now()
			for range n {
				if err := nc.PublishRequest(e.subject, inbox, payload); err != nil {
					return 0, err
				}
			}
			if err := awaitReplies(ctx, all, &got, n, "raw pipelined"); err != nil {
				return 0, err
			}
			return time.Since(start), nil
		},
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			return scheduleEchoes(ctx, e.slave, n)
		},
		extra: []func(context.Context, *Env, int) (time.Duration, error){
			func(ctx context.Context, e *Env, n int) (time.Duration, error) {
				return scheduleEchoes(ctx, e.natsSlave, n)
			},
		},
	}
}

// scheduleEchoes Schedules n echoes of payload on s, then waits for them
// all.
func scheduleEchoes(ctx context.Context, s *master.Slave, n int) (time.Duration, error) {
	tasks := make([]*master.Task[[]byte], n)
	start := time.Now()
	for i := range tasks {
		tasks[i] = master.Schedule(ctx, s, builtin.Echo, payload)
	}
	for _, t := range tasks {
		if _, err := t.Wait(ctx); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func spawnPair() *Pair {
	return &Pair{
		Name: "spawn_first_result", Baseline: "child_start", Unit: "ns/op", N: 3, Chunks: 3,
		base: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			var total time.Duration
			for range n {
				c, d, err := e.startEcho(ctx, "bench.start."+wire.NewID("b"))
				if err != nil {
					return 0, err
				}
				total += d
				c.kill()
			}
			return total, nil
		},
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			m, err := e.master(ctx)
			if err != nil {
				return 0, err
			}
			var total time.Duration
			for range n {
				start := time.Now()
				s, err := m.Spawn(ctx, e.spawnOpts()...)
				if err != nil {
					return 0, err
				}
				_, err = master.Invoke(ctx, s, builtin.Echo, payload)
				total += time.Since(start)
				s.Close()
				if err != nil {
					return 0, err
				}
			}
			return total, nil
		},
	}
}

// replySub subscribes cb to a raw side's replies on subject, with no
// pending limit, and returns once the server has the subscription.
func replySub(nc *nats.Conn, subject string, cb nats.MsgHandler) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(subject, cb)
	if err != nil {
		return nil, err
	}
	sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	return sub, nil
}

// awaitReplies waits until all is closed: the n replies a raw side
// counts in got have come; what names the side in the error after 60 s.
func awaitReplies(ctx context.Context, all <-chan struct{}, got *atomic.Int64, n int, what string) error {
	select {
	case <-all:
		return nil
	case <-time.After(60 * time.Second):
		return fmt.Errorf("%s: %d of %d replies after 60s", what, got.Load(), n)
	case <-ctx.Done():
		return ctx.Err()
	}
}
