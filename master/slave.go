package master

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/internal/lane"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/shm"
)

// Slave is a worker process the master spawned ([Master.Spawn], [Spawn])
// or connected to ([Connect]): an [Executor] whose tasks travel on the
// lane to a worker the master spawned, and over NATS to any other.
// Blocking calls run on it in the order they were sent; many may be in
// flight at once. Its methods are safe for concurrent use.
//
// A Slave that becomes unreachable without Close or Terminate is closed
// (as by Close) once the garbage collector notices: a worker is a
// resource, dropped with its handle.
type Slave struct {
	*slave
}

// slave is the worker as the master keeps it; the user's [Slave] handle
// points to it, so that dropping the handle can close it while the master
// and the tasks in flight still reach it.
type slave struct {
	m            *Master
	id           string
	subject      string // the worker's call subject
	replySubject string
	sub          *nats.Subscription
	cmd          *exec.Cmd
	stdout       *prefixWriter
	stderr       *prefixWriter
	proc         *process      // a spawned worker's pipes
	exited       chan struct{} // closed once the process is reaped
	watched      chan struct{} // a spawned worker's: closed when watchProcess returns
	died         chan struct{} // a spawned worker's: closed when watchProcess sees its process exit
	release      func()        // drops its reference to the default master, or closes Connect's

	mu       sync.Mutex
	pending  pendingSet
	groups   map[context.Context]*ctxGroup
	state    slaveState
	lost     error         // why pending calls fail, once the worker is gone
	reaped   bool          // the process is reaped: its pid may name another process now
	closed   bool          // Close was called: later calls fail with ErrClosed, whatever befell the worker
	outlives bool          // Detach or Persist: Master.Close lets go of it
	detached bool          // Detach: no new calls, no heartbeats
	drained  chan struct{} // closed when onReply meets drainReplies' marker

	refs          map[uint64]*refEntry      // the objects of the worker this master holds Refs to
	releases      []uint64                  // releases to send: id, count, id, count…
	releaseQueued bool                      // a flush of releases is scheduled
	joining       map[uint64]*chunks.Joiner // replies arriving in chunks, by call id
	out           outbox                    // calls by NATS waiting to go together
	lastSend      atomic.Int64              // when the last call was sent, since epoch: see burst
	replies       wire.Received             // the reply batch read, for its memory; onReply's alone

	shmPID  int    // the worker's pid when it shares our /dev/shm: buffers go by reference
	selfPID uint32 // our pid, sent in calls when we share the worker's /dev/shm

	epoch     uint64 // the worker's connection epoch, from heartbeat answers
	epochSeen bool
	abandoned []uint64 // calls failed for the master's reconnect: cancelled again should the worker have been away too

	lastAck atomic.Int64 // unix nanoseconds of the worker's last heartbeat answer
	pid     int          // a connected worker's pid, from its hello

	lane      *lane.Conn    // a spawned worker's lane, unless spawned without
	laneDone  chan struct{} // closed when readLane has returned
	laneBye   chan struct{} // closed when the worker said it read the lane to its end
	laneLetGo bool          // detach or persist let go of the lane; s.mu guards it
	laneShut  atomic.Bool   // the master closed the lane: its end is no news
	lr        laneReaders   // who reads the lane

	closeOnce sync.Once
}

type slaveState uint8

const (
	slaveOpen slaveState = iota
	slaveClosing
	slaveGone
)

// handle returns the user's handle on s, which closes s when it becomes
// unreachable.
func (s *slave) handle() *Slave {
	h := &Slave{s}
	runtime.AddCleanup(h, func(s *slave) {
		// The cleanup goroutine must not block: close on another, which
		// ends when the worker has exited (or the master let go of it).
		// No owner awaits it: Master.Close closes the same slave, and
		// waits for that.
		go func() {
			s.mu.Lock()
			outlives := s.outlives
			s.mu.Unlock()
			if outlives {
				s.abandon()
			} else {
				s.close()
			}
		}()
	}, s)
	return h
}

func newSlave(m *Master, id string) *slave {
	return &slave{
		m: m, id: id,
		subject:      wire.CallSubject(id),
		replySubject: wire.ReplySubject(m.id, id),
		exited:       make(chan struct{}),
		// Each slave numbers its calls from a base of its own: a slave
		// made again for a worker (attached again after it was lost)
		// shares its reply subject, and the worker keys calls by master
		// and id, so a late reply to the one before, or its call still
		// held there, must not meet a new call of the same id.
		pending: pendingSet{base: m.slaveIDs.Add(1)<<slaveIDBits | 1},
	}
}

// slaveIDBits is how many bits of call ids each slave has to itself:
// 2^40 calls, before its ids would run into the next slave's.
const slaveIDBits = 40

func (*slave) executor() {}

// sameMemory notes, from the worker's hello, whether it shares this
// process's /dev/shm: shared-memory buffers then cross by reference.
//
// It also notes, for a worker this master spawned, the connection epoch
// it said hello in: 0, its connection as fresh as its hello. Left to the
// first heartbeat's answer, a reconnect before that answer went unseen,
// and the calls it lost waited for ever.
func (s *slave) sameMemory(h *wire.Hello) {
	if d := shm.Domain(); d != "" && h.ShmDomain == d && h.PID > 0 {
		s.shmPID, s.selfPID = h.PID, uint32(os.Getpid())
	}
	if h.Epoch != 0 {
		// The process attached to: one that answers the heartbeats under
		// the id later, even before the first of them, is another.
		s.mu.Lock()
		if !s.epochSeen {
			s.epoch, s.epochSeen = h.Epoch, true
		}
		s.mu.Unlock()
	}
	if s.cmd != nil {
		s.mu.Lock()
		if !s.epochSeen {
			s.epoch, s.epochSeen = 0, true
		}
		s.mu.Unlock()
	}
}

// inner returns the slave behind h, or an error wrapping [ErrBadCall]
// naming verb when h is nil or zero.
func (h *Slave) inner(verb string) (*slave, error) {
	if h == nil || h.slave == nil || h.m == nil {
		return nil, fmt.Errorf("%w: %s on a nil or zero Slave: get one from Master.Spawn, Spawn or Connect", ErrBadCall, verb)
	}
	return h.slave, nil
}

// ID is the worker's id: its subjects start with proc.<id>. It is empty
// for a nil or zero Slave.
func (h *Slave) ID() string {
	if s, err := h.inner("ID"); err == nil {
		return s.id
	}
	return ""
}

// Master is the master that spawned the worker, or connected to it; nil
// for a nil or zero Slave.
func (h *Slave) Master() *Master {
	if s, err := h.inner("Master"); err == nil {
		return s.m
	}
	return nil
}

// String describes the slave for messages.
func (h *Slave) String() string {
	if s, err := h.inner("String"); err == nil {
		return s.String()
	}
	return "nil Slave"
}

// String describes the slave for messages.
func (s *slave) String() string { return "worker " + s.id }

// PID is the worker's process id: for a worker the master connected to,
// the one its hello gave. It is 0 for a nil or zero Slave.
func (h *Slave) PID() int {
	s, err := h.inner("PID")
	if err != nil {
		return 0
	}
	if s.cmd == nil {
		return s.pid
	}
	return s.cmd.Process.Pid
}

// Exited is closed once the worker's process has exited and been reaped,
// or, for a worker the master connected to ([Connect]), once the master
// has let go of it. For a nil or zero Slave, which has no worker, it is
// closed already.
func (h *Slave) Exited() <-chan struct{} {
	s, err := h.inner("Exited")
	if err != nil {
		none := make(chan struct{})
		close(none)
		return none
	}
	return s.exited
}

// Close asks the worker to finish the calls it was sent and exit, and
// waits until it has: calls sent before Close still reply, calls made
// after it fail with [bus.ErrClosed]. It blocks as long as the queued calls
// run; see [Slave.Terminate] to stop at once. It is idempotent. On a nil
// or zero Slave it fails with [ErrBadCall].
func (h *Slave) Close() error {
	s, err := h.inner("Close")
	if err != nil {
		return err
	}
	s.close()
	return nil
}

// Terminate kills the worker and its process group with SIGKILL and waits
// until it is reaped. Pending calls fail with [bus.ErrWorkerLost]. It is
// idempotent. On a nil or zero Slave it fails with [ErrBadCall].
func (h *Slave) Terminate() error {
	s, err := h.inner("Terminate")
	if err != nil {
		return err
	}
	s.terminate()
	return nil
}

// Detach lets the worker run the calls it was sent, then exit on its own:
// the master stops heartbeating it and Master.Close does not wait for it.
// Calls made after Detach fail with [bus.ErrClosed]; the tasks sent before
// it still get their results while the master lives (Master.Close fails
// those still pending with [bus.ErrClosed]). It is for a worker the master
// spawned: on another, or a nil or zero Slave, it fails with [ErrBadCall].
func (h *Slave) Detach(ctx context.Context) error {
	s, err := h.inner("Detach")
	if err != nil {
		return err
	}
	return s.detach(ctx)
}

// Persist makes the worker outlive its master: it no longer heeds the
// master's lease or death, and serves until it is closed ([Slave.Close]
// still closes it) or stopped (its stop control verb). Master.Close lets
// go of it instead of closing it. It outlives the master only if its NATS
// server does: use it with a master on a server of its own ([WithNATS]);
// other masters then reach the worker with [Connect] and [WithServerID].
// It is for a worker the master spawned: on another, or a nil or zero
// Slave, it fails with [ErrBadCall].
func (h *Slave) Persist(ctx context.Context) error {
	s, err := h.inner("Persist")
	if err != nil {
		return err
	}
	return s.persist(ctx)
}

// StopServer asks the worker, a server the master connected to or a
// persistent one, to stop once its running calls have finished; it
// returns once the worker has agreed. A spawned worker refuses: close it
// with [Slave.Close]. On a nil or zero Slave it fails with [ErrBadCall].
func (h *Slave) StopServer(ctx context.Context) error {
	s, err := h.inner("StopServer")
	if err != nil {
		return err
	}
	return s.stopServer(ctx)
}

func (s *slave) subscribe() error {
	sub, err := s.m.nc.Subscribe(s.replySubject, s.onReply)
	if err != nil {
		return err
	}
	// Replies are bounded by the calls in flight: never drop one.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		sub.Unsubscribe()
		return err
	}
	s.sub = sub
	return nil
}

func (s *slave) unsubscribe() {
	if s.sub != nil {
		s.sub.Unsubscribe()
	}
}
