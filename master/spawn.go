package master

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
)

// Spawn starts a worker process and returns once it serves: by default the
// current binary re-executed, whose main must begin with
//
//	if worker.Main() { return }
//
// The master and the worker share a socketpair, the lane: the worker
// inherits its end (on Windows it dials a Unix socket the master listens
// on), and the master's calls, cancels, heartbeats and
// object operations to it, and their answers, go on it rather than
// through the NATS server ([WithoutLane] and $PROCESSIONAL_LANE=off spawn
// without one). The worker also joins the master's NATS server with the
// master's token, for discovery, inspection and other masters, and says
// hello there; a process that exits or stays silent past the start
// timeout is killed, and the error (wrapping [ErrNoHello]) says to call
// worker.Main. The worker runs in its own process group. If the master's
// process dies, the worker sees its lane end (and, on Linux, the kernel
// signals it) and kills its group; if the worker dies, its lane's end
// fails its pending calls with bus.ErrWorkerLost at once. Its output
// reaches the master's, each line prefixed with its id. An option that
// does not apply is refused with [ErrConfig], naming it.
func (m *Master) Spawn(ctx context.Context, opts ...SpawnOption) (*Slave, error) {
	refuseNestedSpawn()
	ctx = orBackground(ctx)
	o := spawnOptions{startTimeout: 30 * time.Second, stdout: os.Stdout, stderr: os.Stderr}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.auth != nil && m.srv != nil {
		return nil, fmt.Errorf("%w: %s on a master with an embedded server: it takes its own token, not a worker's user", ErrConfig, o.authBy)
	}
	if o.binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("%w: find the current binary: %v", ErrSpawn, err)
		}
		o.binary, o.args = exe, os.Args[1:]
	}
	if o.id == "" {
		o.id = wire.NewID("w")
	}
	if err := m.startSpawn(o.id); err != nil {
		return nil, err
	}
	defer m.endSpawn(o.id)

	s := newSlave(m, o.id)
	hello := make(chan *nats.Msg, 1)
	hsub, err := m.nc.ChanSubscribe(wire.HelloSubject(m.id, o.id), hello)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSpawn, err)
	}
	defer hsub.Unsubscribe()
	if err := s.subscribe(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSpawn, err)
	}
	if err := m.nc.Flush(); err != nil {
		s.unsubscribe()
		return nil, fmt.Errorf("%w: %v", ErrSpawn, err)
	}

	cfg := wire.WorkerConfig{URL: m.url, Token: m.token, Worker: o.id, Master: m.id,
		Hello: wire.HelloSubject(m.id, o.id), Version: wire.Version(), PID: os.Getpid(), MaxValue: m.maxValue, Pool: o.pool, MaxPending: o.maxPending,
		User: m.files.User, Password: m.files.Password, Creds: m.files.Creds, TLSCert: m.files.Cert, TLSKey: m.files.Key, TLSCA: m.files.CA}
	if o.auth != nil {
		cfg.User, cfg.Password, cfg.Creds = o.auth.User, o.auth.Password, o.auth.Creds
	}
	cmd := exec.Command(o.binary, o.args...)
	var laneEnd *os.File // the worker's end of the lane
	if !o.noLane && laneEnabled() {
		if laneEnd, err = s.openLane(&cfg); err != nil {
			s.unsubscribe()
			return nil, fmt.Errorf("%w: lane: %v", ErrSpawn, err)
		}
		if laneEnd != nil {
			cmd.ExtraFiles = []*os.File{laneEnd}
		}
	}
	cmd.Env = append(append(os.Environ(), o.env...), cfg.Env())
	s.stdout = newPrefixWriter(o.stdout, "["+o.id+"] ")
	s.stderr = newPrefixWriter(o.stderr, "["+o.id+"] ")
	proc, outW, errW, err := newProcess()
	if err != nil {
		s.dropLane(laneEnd)
		s.unsubscribe()
		return nil, fmt.Errorf("%w: pipes: %v", ErrSpawn, err)
	}
	// *os.File outputs: exec starts no copying goroutine of its own, and
	// the master can stop copying when it lets go of the worker.
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = sysProcAttr()
	var startErr error
	m.onSpawner(func() {
		if startErr = cmd.Start(); startErr != nil {
			return
		}
		if err := proc.started(cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			startErr = err
		}
	})
	outW.Close() // the child's now
	errW.Close()
	if startErr != nil {
		proc.closeOutput()
		proc.abandon()
		proc.abandonR.Close()
		s.dropLane(laneEnd)
		s.unsubscribe()
		return nil, fmt.Errorf("%w: %s: %v", ErrSpawn, o.binary, startErr)
	}
	proc.copyOutput(s.stdout, s.stderr)
	s.cmd, s.proc, s.watched, s.died = cmd, proc, make(chan struct{}), make(chan struct{})
	if s.lane != nil {
		if laneEnd != nil {
			laneEnd.Close() // the worker's now
		}
		go s.readLane() // ends with the lane, which watchProcess closes and awaits
	}
	go s.watchProcess() // the slave's: its close, terminate and abandon await it

	timer := time.NewTimer(o.startTimeout)
	defer timer.Stop()
	var fail error
	select {
	case msg := <-hello:
		var h wire.Hello
		if err := codec.Unmarshal(msg.Data, &h); err != nil {
			fail = fmt.Errorf("%w: worker %s said an undecodable hello: %v", bus.ErrBadPayload, o.id, err)
		} else if err := h.Check(); err != nil {
			fail = err
		} else {
			s.sameMemory(&h)
		}
	case <-s.exited:
		if why := s.workerComplaint(); why != "" {
			// It did call worker.Main, which said why it could not serve.
			fail = fmt.Errorf("%w: worker %s (%s) exited (%s) before saying hello: %s", ErrSpawn, o.id, o.binary, s.exitStatus(), why)
		} else {
			fail = fmt.Errorf("%w: worker %s (%s) exited (%s) before saying hello: its main must call worker.Main() first thing%s",
				ErrNoHello, o.id, o.binary, s.exitStatus(), s.lastOutput())
		}
	case <-timer.C:
		if s.deniedSubjects() {
			fail = fmt.Errorf("%w: worker %s (%s) said no hello within %s: the NATS server denied it a worker's subjects; give it a worker's user (WithWorkerUserInfo, WithWorkerCredentials)%s",
				ErrSpawn, o.id, o.binary, o.startTimeout, s.lastOutput())
			break
		}
		fail = fmt.Errorf("%w: worker %s (%s) said no hello within %s: its main must call worker.Main() first thing%s",
			ErrNoHello, o.id, o.binary, o.startTimeout, s.lastOutput())
	case <-ctx.Done():
		fail = fmt.Errorf("%w: worker %s: %w", ErrSpawn, o.id, ctx.Err())
	case <-m.closing:
	}
	select {
	case <-m.closing:
		fail = fmt.Errorf("%w: master %s closed during the spawn of worker %s", bus.ErrClosed, m.id, o.id)
	default:
	}
	if fail != nil {
		s.terminate()
		return nil, fail
	}
	// A lease from the start, rather than after the first tick: a worker
	// holding a live lease rides out a NATS outage, one without gives up.
	// Should this one not go, the next tick's will.
	if s.lane != nil {
		s.heartbeat(m.heartbeat(m.childLease))
	} else {
		m.firstBeat(s.id, m.childLease)
	}
	s.lastAck.Store(time.Now().UnixNano()) // the hello counts as the first answer
	m.mu.Lock()
	m.slaves[s.id] = s
	m.mu.Unlock()
	return s.handle(), nil
}

// refuseNestedSpawn stops a process that was spawned as a worker but
// whose main did not call worker.Main: left to go on, it would spawn
// itself again and again.
func refuseNestedSpawn() {
	if _, ok := os.LookupEnv(wire.EnvWorker); ok {
		fmt.Fprintf(os.Stderr, "processional: this process was spawned as a worker, but its main did not call worker.Main() first thing: refusing to spawn a worker of its own\n")
		os.Exit(3)
	}
}
