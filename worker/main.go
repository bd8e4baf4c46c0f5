package worker

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/lane"
	"github.com/processional/processional/internal/natsauth"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/shm"
)

// Main makes the current process a worker if its master spawned it as one,
// and returns false at once otherwise. Call it first thing in main:
//
//	if worker.Main() {
//		return
//	}
//
// In a spawned worker it first takes its end of the lane, the socketpair
// it shares with its master (inherited as a descriptor, which it closes,
// keeping a close-on-exec copy, so that its own children never hold it).
// It then connects to the master's NATS server with the master's token,
// serves the functions this binary registered, on the lane for its master
// and on NATS for everyone else, says hello, and returns true once the
// master has closed it and every queued call has replied. The worker also
// stops when its connection to the master's server is lost for good, when
// its master's lease lapses, and on SIGTERM (after its running calls). The
// end of its lane (EOF, or garbage on it), and the parent-death signal its
// master armed (real-time signal 40, when the master process dies, on
// Linux), kill the worker's process group at once: the worker and whatever
// it started; a detached or persistent worker lives on. When the worker
// cannot start, Main reports why on stderr and exits the process with
// status 2.
//
// With $PROCESSIONAL_WORKER_CPUPROFILE set to a path, a spawned worker
// writes a CPU profile, from its start to its end of serving, to that path
// followed by "." and its id (`processional bench --cpuprofile F` sets it
// to F.worker), and beside it, at the same path followed by ".allocs", a
// profile of what it allocated; a worker killed outright writes neither.
func Main() bool {
	cfg, ok, err := wire.WorkerConfigFromEnv()
	if !ok {
		return false
	}
	// A worker may spawn workers of its own: they get their own config.
	os.Unsetenv(wire.EnvWorker)
	stopProfile := func() {}
	if path := os.Getenv(EnvCPUProfile); path != "" && cfg != nil {
		stop, perr := startCPUProfile(path + "." + cfg.Worker)
		if perr != nil {
			fmt.Fprintf(os.Stderr, "processional worker: %s: %v\n", EnvCPUProfile, perr)
		} else {
			stopProfile = stop
		}
	}
	err = serveMain(cfg, err)
	stopProfile()
	// The shared memory the worker still holds: what no one else holds
	// goes with it.
	shm.ReleaseAll()
	if err != nil {
		fmt.Fprintf(os.Stderr, "processional worker: %v\n", err)
		os.Exit(2)
	}
	return true
}

// EnvCPUProfile names the variable that makes spawned workers write a CPU
// profile (see [Main]).
const EnvCPUProfile = "PROCESSIONAL_WORKER_CPUPROFILE"

// startCPUProfile profiles the process into a new file at path until
// stop, which writes its allocations' profile to path followed by
// ".allocs".
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		if a, err := os.Create(path + ".allocs"); err == nil {
			pprof.Lookup("allocs").WriteTo(a, 0)
			a.Close()
		}
	}, nil
}

func serveMain(cfg *wire.WorkerConfig, cfgErr error) error {
	if cfg == nil {
		return cfgErr
	}
	var laneConn *net.UnixConn
	if cfg.Lane > 0 {
		// First: its descriptor must not leak into a child of ours.
		c, err := lane.Inherit(cfg.Lane)
		if err != nil {
			return fmt.Errorf("worker %s: %w", cfg.Worker, err)
		}
		laneConn = c
		defer c.Close()
	} else if cfg.LaneAddr != "" {
		c, err := lane.Dial(cfg.LaneAddr, cfg.LaneKey)
		if err != nil {
			return fmt.Errorf("worker %s: %w", cfg.Worker, err)
		}
		laneConn = c
		defer c.Close()
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	defer signal.Stop(term)
	// The master's death: kill the group at once, from wherever we are,
	// unless the master made the worker outlive it. A broken stdout (the
	// master's end of the pipe gone) must not kill such a worker either.
	pdeath := make(chan os.Signal, 1)
	signal.Notify(pdeath, wire.ParentDeathSignal)
	defer signal.Stop(pdeath)
	brokenPipe := make(chan os.Signal, 1) // caught, so that it kills no one
	signal.Notify(brokenPipe, syscall.SIGPIPE)
	defer signal.Stop(brokenPipe)
	var outlives func() bool // set once the worker serves
	var outlivesMu sync.Mutex
	stopWatch, watchDone := make(chan struct{}), make(chan struct{})
	defer func() { close(stopWatch); <-watchDone }()
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-pdeath:
				outlivesMu.Lock()
				o := outlives
				outlivesMu.Unlock()
				if o == nil || !o() {
					killGroup()
				}
			case <-brokenPipe:
			case <-stopWatch:
				return
			}
		}
	}()
	if orphaned(cfg) { // the master died before we could catch its signal
		killGroup()
	}
	lost := make(chan struct{})
	creds, err := natsauth.Files{Token: cfg.Token, User: cfg.User, Password: cfg.Password, Creds: cfg.Creds, Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA}.Options()
	if err != nil {
		return fmt.Errorf("worker %s: %w", cfg.Worker, err)
	}
	// The connection comes back every ~100 ms for as long as a master's
	// lease is live: the lease, which lapses meanwhile, bounds the wait.
	// With none, the server is gone for good after giveUpAttempts.
	var serving atomic.Pointer[Worker]
	var failed atomic.Int32 // attempts failed since the connection dropped, with no lease live
	nc, err := nats.Connect(cfg.URL, append(append(creds, natsauth.Reconnect()...),
		nats.Name("processional worker "+cfg.Worker),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { failed.Store(0) }),
		nats.ReconnectErrHandler(func(c *nats.Conn, _ error) {
			if w := serving.Load(); (w == nil || len(w.Leases()) == 0) && failed.Add(1) == giveUpAttempts {
				go c.Close() // not from inside a handler; serveMain awaits the closed handler (lost)
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(lost) }),
	)...)
	if err != nil {
		return fmt.Errorf("worker %s: connect to %s: %w", cfg.Worker, cfg.URL, err)
	}
	defer nc.Close()
	if cfgErr != nil {
		// Tell the master why, in the hello it waits for, then give up.
		h := wire.NewHello(cfg.Worker)
		h.Error = cfgErr.Error()
		sayHello(nc, cfg.Hello, h)
		return cfgErr
	}
	opts := []Option{WithID(cfg.Worker), WithOwner(cfg.Master)}
	if cfg.MaxValue > 0 {
		opts = append(opts, WithMaxValue(cfg.MaxValue))
	}
	if cfg.Pool != "" {
		opts = append(opts, WithPool(cfg.Pool))
	}
	if cfg.MaxPending > 0 {
		opts = append(opts, WithMaxPending(cfg.MaxPending))
	}
	if laneConn != nil {
		opts = append(opts, func(o *options) error {
			o.Lane = laneConn
			// The lane's end is the master's death (or as bad), seen on
			// every system: the group goes at once, as on the
			// parent-death signal. A worker made to outlive its master
			// never gets here.
			o.OnLaneLost = func(error) { killGroup() }
			return nil
		})
	}
	w, err := Serve(nc, opts...)
	if err != nil {
		return err
	}
	serving.Store(w)
	outlivesMu.Lock()
	outlives = w.Persistent
	outlivesMu.Unlock()
	if err := sayHello(nc, cfg.Hello, wire.NewHello(cfg.Worker)); err != nil {
		w.Abort()
		return fmt.Errorf("worker %s: hello: %w", cfg.Worker, err)
	}
	select {
	case <-w.Stopping():
		w.Close()
	case <-term:
		w.Close()
	case <-w.Lapsed():
		// The master stopped heartbeating: it is gone, and so is whoever
		// would read the results.
		w.Abort()
		return nil
	case <-lost:
		w.Abort()
		return nil
	}
	nc.Flush()
	return nil
}

// giveUpAttempts is how many reconnects a worker that holds no lease
// tries (about 2.5 s) before it takes its server for gone.
const giveUpAttempts = 20

func sayHello(nc *nats.Conn, subject string, h *wire.Hello) error {
	data, err := codec.Marshal(h)
	if err != nil {
		return err
	}
	if err := nc.Publish(subject, data); err != nil {
		return err
	}
	return nc.FlushTimeout(5 * time.Second)
}
