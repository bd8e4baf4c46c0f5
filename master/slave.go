package master

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/shm"
)

// Slave is a worker process the master spawned: an [Executor] whose tasks
// travel over NATS. Blocking calls run on it in the order they were sent;
// many may be in flight at once. Its methods are safe for concurrent use.
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
	release      func()        // drops the shared master's reference

	mu       sync.Mutex
	pending  pendingSet
	groups   map[context.Context]*ctxGroup
	state    slaveState
	lost     error         // why pending calls fail, once the worker is gone
	reaped   bool          // the process is reaped: its pid may name another process now
	closed   bool          // Close was called: later calls fail with ErrClosed, whatever befell the worker
	outlives bool          // Detach or Persist: Master.Close lets go of it
	detached bool          // Detach: no new calls, no heartbeats
	settled  chan struct{} // closed when onReply meets the settle marker

	refs          map[uint64]*refEntry      // the objects of the worker this master holds Refs to
	releases      []uint64                  // releases to send: id, count, id, count…
	releaseQueued bool                      // a flush of releases is scheduled
	joining       map[uint64]*chunks.Joiner // replies arriving in chunks, by call id

	shmPID  int    // the worker's pid when it shares our /dev/shm: buffers go by reference
	selfPID uint32 // our pid, sent in calls when we share the worker's /dev/shm

	epoch     uint64 // the worker's connection epoch, from heartbeat answers
	epochSeen bool
	abandoned []uint64 // calls failed for the master's reconnect: cancelled again should the worker have been away too

	lastAck atomic.Int64 // unix nanoseconds of the worker's last heartbeat answer
	pid     int          // a connected worker's pid, from its hello

	closeOnce sync.Once
}

type slaveState uint8

const (
	slaveOpen slaveState = iota
	slaveClosing
	slaveGone
)

// pendingCall is a task waiting for its reply.
type pendingCall interface {
	resolve(raw []byte, remote *bus.RemoteError, err error)
	abort(err error)
	sent(s *slave, id uint64)
	watch(ctx context.Context)
	// setPins hands the task the Refs its argument carries, to let go of
	// when it ends.
	setPins(pins []*refEntry)
	// guardShm notes that the task's result refers to shared-memory
	// buffers, whose transit must be dropped if it is never decoded.
	guardShm(raw []byte)
	// giveBack hands the task the buffer its result was joined in, to give
	// back to the chunks' buffers once the result is decoded.
	giveBack(buf []byte)
	// group is the caller's context the task watches; s.mu guards it.
	group() *ctxGroup
	setGroup(g *ctxGroup)
}

// ctxGroup watches one caller's context for all the tasks sent to a slave
// under it. Registering a context.AfterFunc per task costs a map insert
// and delete in the context on every call; one per context and slave
// costs nothing per call.
type ctxGroup struct {
	ctx   context.Context
	n     int  // tasks in flight under ctx
	fired bool // ctx ended and its tasks were aborted: take no more
	stop  func() bool
}

// handle returns the user's handle on s, which closes s when it becomes
// unreachable.
func (s *slave) handle() *Slave {
	h := &Slave{s}
	runtime.AddCleanup(h, func(s *slave) {
		// The cleanup goroutine must not block: close on another, which
		// ends when the worker has exited (or the master let go of it).
		go func() {
			s.mu.Lock()
			outlives := s.outlives
			s.mu.Unlock()
			if outlives {
				s.letGo()
			} else {
				s.Close()
			}
		}()
	}, s)
	return h
}

func newSlave(m *Master, id string) *slave {
	return &slave{
		m: m, id: id,
		subject:      bus.CallSubject(id),
		replySubject: bus.ReplySubject(m.id, id),
		exited:       make(chan struct{}),
	}
}

func (*slave) executor() {}

// sameMemory notes, from the worker's hello, whether it shares this
// process's /dev/shm: shared-memory buffers then cross by reference.
//
// It also notes, for a worker this master spawned, the connection epoch
// it said hello in: 0, its connection as fresh as its hello. Left to the
// first heartbeat's answer, a reconnect before that answer went unseen,
// and the calls it lost waited for ever.
func (s *slave) sameMemory(h *bus.Hello) {
	if d := shm.Domain(); d != "" && h.ShmDomain == d && h.PID > 0 {
		s.shmPID, s.selfPID = h.PID, uint32(os.Getpid())
	}
	if s.cmd != nil {
		s.mu.Lock()
		if !s.epochSeen {
			s.epoch, s.epochSeen = 0, true
		}
		s.mu.Unlock()
	}
}

// ID is the worker's id: its subjects start with proc.<id>.
func (s *slave) ID() string { return s.id }

// Master is the master that spawned the worker.
func (s *slave) Master() *Master { return s.m }

// String describes the slave for messages.
func (s *slave) String() string { return "worker " + s.id }

// PID is the worker's process id.
func (s *slave) PID() int {
	if s.cmd == nil {
		return s.pid
	}
	return s.cmd.Process.Pid
}

// Exited is closed once the worker's process has exited and been reaped,
// or, for a worker the master connected to ([Connect]), once the master
// has let go of it.
func (s *slave) Exited() <-chan struct{} { return s.exited }

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

func (s *slave) onReply(msg *nats.Msg) {
	if len(msg.Data) == 0 { // the marker settle sent itself
		s.mu.Lock()
		ch := s.settled
		s.settled = nil
		s.mu.Unlock()
		if ch != nil {
			close(ch)
		}
		return
	}
	if bus.IsReplyChunk(msg.Data) {
		s.replyChunk(msg)
		return
	}
	s.handleReply(msg.Data)
}

// handleReply handles one reply envelope, sent whole or joined from
// chunks.
func (s *slave) handleReply(data []byte) {
	id, raw, remote, err := bus.DecodeReply(data)
	if id == 0 {
		return // not an answer to a call of ours
	}
	if id == closeID {
		s.end() // the worker ran our calls and forgot us
		return
	}
	if err != nil {
		err = fmt.Errorf("worker %s: %w", s.id, err)
	}
	s.mu.Lock()
	p := s.takeLocked(id)
	s.mu.Unlock()
	if p == nil {
		if raw != nil && bus.IsRef(raw) {
			if o, err := bus.DecodeRef(raw); err == nil {
				s.releaseGrant(o) // nobody waits for this reference
			}
		}
		return // cancelled, or answered already
	}
	if s.shmPID != 0 && raw != nil && bus.HasShm(raw) {
		p.guardShm(raw)
	}
	p.resolve(raw, remote, err)
}

var codecs = sync.Pool{New: func() any { return new(callCodec) }}

// send publishes one call and registers t for its reply; when watch is
// set, t is aborted when ctx ends. It fails t when the call cannot be sent.
func (s *slave) send(ctx context.Context, kind bus.Kind, fn, argType string, arg any, t pendingCall, watch bool) {
	c := bus.Call{Kind: kind, Master: s.m.id, Function: fn, ArgType: argType}
	if d, ok := ctx.Deadline(); ok {
		c.Timeout = time.Until(d)
		if c.Timeout <= 0 {
			t.resolve(nil, nil, context.DeadlineExceeded)
			return
		}
	}
	if err := ctx.Err(); err != nil {
		t.resolve(nil, nil, err)
		return
	}
	watch = watch && ctx.Done() != nil
	perTask := watch && !reflect.TypeOf(ctx).Comparable() // cannot key a group
	buf := chunks.GetBuffer()
	bp := &buf
	defer func() { chunks.PutBuffer(*bp) }()
	s.mu.Lock()
	if s.state != slaveOpen {
		err := s.closedErr()
		s.mu.Unlock()
		t.resolve(nil, nil, err)
		return
	}
	if watch && !perTask {
		t.setGroup(s.groupLocked(ctx))
	}
	c.ID = s.pending.add(t)
	s.mu.Unlock()
	c.PID = s.selfPID
	cc := codecs.Get().(*callCodec)
	cc.shmPID = s.shmPID
	data, err := bus.AppendCallWith((*bp)[:0], &c, arg, cc)
	if len(cc.pins) > 0 {
		t.setPins(cc.pins) // before the call goes: its reply may come at once
		cc.pins = nil
	}
	codecs.Put(cc)
	if err != nil {
		err = fmt.Errorf("worker %s: %s: argument: %w", s.id, fn, err)
	} else {
		*bp = data
		if len(data) > int(s.m.nc.MaxPayload()) || int64(len(data)) > s.m.maxValue {
			err = s.sendChunked(ctx, c.ID, fn, data) // or refuse it past maxValue
		} else if err = s.m.nc.PublishRequest(s.subject, s.replySubject, data); errors.Is(err, nats.ErrMaxPayload) {
			err = fmt.Errorf("%w: worker %s: %s: the call is %d bytes, over the server's max payload of %d", bus.ErrTooBig, s.id, fn, len(data), s.m.nc.MaxPayload())
		} else if errors.Is(err, nats.ErrReconnectBufExceeded) {
			// Not sent: the connection is down, and the calls sent since
			// it dropped fill its buffer.
			err = fmt.Errorf("%w: worker %s: %s: the master's connection to NATS is down and its reconnect buffer is full: %w", bus.ErrWorkerLost, s.id, fn, err)
		} else if err != nil {
			err = fmt.Errorf("worker %s: %s: send: %w", s.id, fn, err)
		}
	}
	if err != nil {
		s.mu.Lock()
		s.takeLocked(c.ID)
		s.mu.Unlock()
		t.resolve(nil, nil, err)
		return
	}
	t.sent(s, c.ID)
	if perTask {
		t.watch(ctx)
	}
}

// groupLocked returns the group watching ctx, counting one more task in
// it; s.mu held.
func (s *slave) groupLocked(ctx context.Context) *ctxGroup {
	g := s.groups[ctx]
	if g == nil { // none yet, or the last one fired: its AfterFunc is spent
		if s.groups == nil {
			s.groups = make(map[context.Context]*ctxGroup)
		}
		g = &ctxGroup{ctx: ctx}
		s.groups[ctx] = g
		g.stop = context.AfterFunc(ctx, func() { s.abortGroup(g) })
	}
	g.n++
	return g
}

// takeLocked removes call id from the pending set and from its context
// group, and drops the part of its reply joined so far; s.mu held.
func (s *slave) takeLocked(id uint64) pendingCall {
	p := s.pending.take(id)
	if p != nil {
		s.leaveGroupLocked(p)
	}
	s.dropJoinLocked(id)
	return p
}

// dropJoinLocked forgets the reply to call id arriving in chunks, if one
// is, and gives its buffer back: the call is answered, failed or
// cancelled, and the rest of its chunks, should they come, are refused.
// s.mu held.
func (s *slave) dropJoinLocked(id uint64) {
	if j := s.joining[id]; j != nil {
		delete(s.joining, id)
		chunks.PutBuffer(j.Bytes())
	}
}

// dropJoinsLocked is dropJoinLocked for every reply arriving in chunks;
// s.mu held.
func (s *slave) dropJoinsLocked() {
	for _, j := range s.joining {
		chunks.PutBuffer(j.Bytes())
	}
	s.joining = nil
}

func (s *slave) leaveGroupLocked(p pendingCall) {
	g := p.group()
	if g == nil || g.n == 0 {
		return
	}
	g.n--
	if g.n == 0 {
		if s.groups[g.ctx] == g {
			delete(s.groups, g.ctx)
		}
		g.stop()
	}
}

// abortGroup aborts every pending call sent under g's context, which has
// ended.
func (s *slave) abortGroup(g *ctxGroup) {
	var victims []pendingCall
	s.mu.Lock()
	g.fired = true
	if s.groups[g.ctx] == g {
		delete(s.groups, g.ctx) // a task sent from now on starts a new group
	}
	for _, p := range s.pending.slots {
		if p != nil && p.group() == g {
			victims = append(victims, p)
		}
	}
	for _, p := range s.pending.overflow {
		if p.group() == g {
			victims = append(victims, p)
		}
	}
	s.mu.Unlock()
	for _, p := range victims {
		p.abort(g.ctx.Err())
	}
}

// cancelCall forgets call id and asks the worker to cancel its context.
func (s *slave) cancelCall(id uint64) {
	s.mu.Lock()
	p := s.takeLocked(id)
	s.mu.Unlock()
	if p != nil {
		s.control(bus.KindCancel, id)
	}
}

func (s *slave) control(kind bus.Kind, id uint64) error {
	data, err := bus.AppendCall(nil, &bus.Call{Kind: kind, Master: s.m.id, ID: id}, nil)
	if err != nil {
		return err
	}
	return s.m.nc.Publish(s.subject, data)
}

// closedErr is the error of a call on a slave that is not open; s.mu held.
// After Close it is ErrClosed, even when the worker was lost meanwhile
// (its lease lapsed as it exited): the caller closed it.
func (s *slave) closedErr() error {
	if s.closed {
		return fmt.Errorf("%w: worker %s is closed", bus.ErrClosed, s.id)
	}
	if s.lost != nil {
		return s.lost
	}
	if s.detached {
		return fmt.Errorf("%w: worker %s is detached", bus.ErrClosed, s.id)
	}
	return fmt.Errorf("%w: worker %s is closed", bus.ErrClosed, s.id)
}

// reap waits for the process to exit, kills what is left of its process
// group, reaps it, lets the replies it sent before exiting arrive, then
// fails every call still pending.
func (s *slave) reap() {
	pid := s.cmd.Process.Pid
	if !s.proc.waitExit(pid) {
		// The master let go of a detached or persistent worker: it lives
		// on without us.
		s.proc.closeOutput()
		s.stdout.flush()
		s.stderr.flush()
		s.mu.Lock()
		s.reaped = true // not ours to signal any more
		if s.lost == nil {
			s.lost = fmt.Errorf("%w: the master let go of worker %s, which lives on", bus.ErrClosed, s.id)
		}
		s.mu.Unlock()
		s.end()
		// Still our child: when it exits, take its group along and reap
		// it. The goroutine lives as long as the worker, no longer.
		go func() {
			var info unix.Siginfo
			for unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
			}
			syscall.Kill(-pid, syscall.SIGKILL)
			s.cmd.Wait()
		}()
		return
	}
	s.proc.letGo() // nobody will: close its pipe
	s.mu.Lock()
	// The exited process still holds its pid until reaped: the group id
	// names no one else yet.
	syscall.Kill(-pid, syscall.SIGKILL)
	s.reaped = true
	s.mu.Unlock()
	s.cmd.Wait()
	// The shared memory the worker held and no one else does: a worker
	// killed could not release it.
	shm.Exited(pid)
	shm.Sweep()
	s.proc.drainOutput()
	s.stdout.flush()
	s.stderr.flush()
	s.settle()
	s.mu.Lock()
	switch {
	case s.lost != nil:
	case s.state == slaveClosing && s.cmd.ProcessState.Success():
		s.lost = fmt.Errorf("%w: worker %s is closed", bus.ErrClosed, s.id)
	default:
		s.lost = fmt.Errorf("%w: worker %s (pid %d) exited: %s", bus.ErrWorkerLost, s.id, s.cmd.Process.Pid, s.cmd.ProcessState)
	}
	s.mu.Unlock()
	s.end()
}

// end is the end of the worker for this master: every call still pending
// fails with s.lost (or ErrClosed), and Exited closes. Only its first call
// counts.
func (s *slave) end() {
	s.mu.Lock()
	if s.state == slaveGone {
		s.mu.Unlock()
		return
	}
	if s.lost == nil {
		s.lost = fmt.Errorf("%w: worker %s is closed", bus.ErrClosed, s.id)
	}
	s.state = slaveGone
	pending, _ := s.takeAllLocked()
	err := s.lost
	s.mu.Unlock()
	close(s.exited)
	for _, p := range pending {
		p.resolve(nil, nil, err)
	}
}

// exitStatus describes how the process ended; call it after exited.
func (s *slave) exitStatus() string { return s.cmd.ProcessState.String() }

// Close asks the worker to finish the calls it was sent and exit, and
// waits until it has: calls sent before Close still reply, calls made
// after it fail with [bus.ErrClosed]. It blocks as long as the queued calls
// run; see [Slave.Terminate] to stop at once. It is idempotent.
func (s *slave) Close() error {
	if s == nil || s.m == nil { // a nil or zero handle
		return fmt.Errorf("%w: Close on a nil or zero Slave", ErrBadCall)
	}
	s.mu.Lock()
	s.closed = true
	if s.state == slaveOpen {
		s.state = slaveClosing
		s.mu.Unlock()
		if err := s.sendClose(); err != nil {
			if s.cmd == nil {
				s.end()
			} else {
				s.kill()
			}
		}
	} else {
		s.mu.Unlock()
	}
	<-s.exited
	s.finish()
	return nil
}

// sendClose sends the worker Close's request. A connected worker lives
// on: it acknowledges the close once this master's calls are done, and
// forgets the master. A spawned worker exits.
func (s *slave) sendClose() error {
	if s.cmd != nil {
		return s.control(bus.KindClose, 0)
	}
	data, err := bus.AppendCall(nil, &bus.Call{Kind: bus.KindClose, Master: s.m.id, ID: closeID}, nil)
	if err != nil {
		return err
	}
	return s.m.nc.PublishRequest(s.subject, s.replySubject, data)
}

// closeAgain sends Close's request again, when Close waits for the worker
// and the master's or the worker's connection dropped and came back: NATS
// delivers at most once, so the request may have been lost, and then the
// worker would go on answering heartbeats and Close wait for ever. A
// worker takes a second close as it took the first: one that already
// forgot the master answers it again.
func (s *slave) closeAgain() {
	s.mu.Lock()
	waiting := s.state == slaveClosing && s.lost == nil && !s.detached // in Close, not lost nor detached
	s.mu.Unlock()
	if waiting {
		s.sendClose()
	}
}

// closeID is the id of a connected worker's close request: its
// acknowledgement ends the slave. pendingSet never hands it out.
const closeID = math.MaxUint64

// Terminate kills the worker and its process group with SIGKILL and waits
// until it is reaped. Pending calls fail with [bus.ErrWorkerLost]. It is
// idempotent.
func (s *slave) Terminate() error {
	if s == nil || s.m == nil {
		return fmt.Errorf("%w: Terminate on a nil or zero Slave", ErrBadCall)
	}
	s.lose(fmt.Errorf("%w: worker %s was terminated by its master", bus.ErrWorkerLost, s.id))
	<-s.exited
	s.finish()
	return nil
}

// lose kills the worker, giving why as the error of its pending calls
// (unless it is gone already). It does not wait: the reaper fails the
// pending calls once the process is gone.
func (s *slave) lose(why error) {
	s.mu.Lock()
	if s.state != slaveGone && s.lost == nil {
		s.lost = why
	}
	if s.outlives && s.cmd != nil {
		// Detached or persistent: not ours to kill. Let go of it: its
		// pending calls fail with why.
		s.mu.Unlock()
		s.proc.letGo()
		return
	}
	if s.state == slaveOpen {
		s.state = slaveClosing
	}
	s.mu.Unlock()
	if s.cmd == nil {
		// Not ours to kill: tell it we are gone, and let go.
		s.control(bus.KindClose, 0)
		s.end()
		return
	}
	s.kill()
}

func (s *slave) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil && !s.reaped {
		// The negative pid names the process group: the worker and
		// whatever it started.
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// settle waits until onReply has handled every reply the server delivered
// before now: a worker that closed flushed its replies before it exited,
// and they must not be failed as lost. It sends a marker on the reply
// subject, which arrives after them, and waits for it a bounded time.
func (s *slave) settle() {
	if !s.m.nc.IsConnected() {
		// Cut off from the server: what the worker sent is lost, and the
		// marker would wait in the reconnect buffer, not come back.
		return
	}
	ch := make(chan struct{})
	s.mu.Lock()
	s.settled = ch
	s.mu.Unlock()
	if s.m.nc.Publish(s.replySubject, nil) != nil {
		return // the connection is closed: nothing more will arrive
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
	}
}

// Detach lets the worker run the calls it was sent, then exit on its own:
// the master stops heartbeating it and Master.Close does not wait for it.
// Calls made after Detach fail with [bus.ErrClosed]; the tasks sent before
// it still get their results while the master lives (Master.Close fails
// those still pending with [bus.ErrClosed]). It is for a worker the master
// spawned.
func (s *slave) Detach(ctx context.Context) error {
	if err := s.ownerRequest(ctx, bus.KindDetach); err != nil {
		return err
	}
	s.mu.Lock()
	s.outlives, s.detached = true, true
	if s.state == slaveOpen {
		s.state = slaveClosing
	}
	s.mu.Unlock()
	return nil
}

// Persist makes the worker outlive its master: it no longer heeds the
// master's lease or death, and serves until it is closed ([Slave.Close]
// still closes it) or stopped (its stop control verb). Master.Close lets
// go of it instead of closing it. It outlives the master only if its NATS
// server does: use it with a master on a server of its own ([WithNATS]);
// other masters then reach the worker with [Connect] and [WithServerID].
// It is for a worker the master spawned.
func (s *slave) Persist(ctx context.Context) error {
	if err := s.ownerRequest(ctx, bus.KindPersist); err != nil {
		return err
	}
	s.mu.Lock()
	s.outlives = true
	s.mu.Unlock()
	return nil
}

// ownerRequest sends the worker a request only its owner may, and waits
// for its acknowledgement.
func (s *slave) ownerRequest(ctx context.Context, kind bus.Kind) error {
	if s == nil || s.m == nil {
		return fmt.Errorf("%w: %s on a nil or zero Slave", ErrBadCall, kind)
	}
	if s.cmd == nil {
		return fmt.Errorf("%w: %s: worker %s was not spawned by this master", ErrBadCall, kind, s.id)
	}
	s.mu.Lock()
	if s.state != slaveOpen {
		err := s.closedErr()
		s.mu.Unlock()
		return err
	}
	// Before asking: should the answer be lost, the worker may have acted,
	// and then it must not be killed as ours.
	s.outlives = true
	s.mu.Unlock()
	data, err := bus.AppendCall(nil, &bus.Call{Kind: kind, Master: s.m.id}, nil)
	if err != nil {
		return err
	}
	msg, err := s.m.nc.RequestWithContext(orBackground(ctx), s.subject, data)
	if err != nil {
		return fmt.Errorf("worker %s: %s: %w", s.id, kind, err)
	}
	_, _, remote, err := bus.DecodeReply(msg.Data)
	if err != nil {
		return fmt.Errorf("worker %s: %s: %w", s.id, kind, err)
	}
	if remote != nil {
		return remote
	}
	return nil
}

// letGo ends the master's hold on a worker that outlives it: the worker
// runs on, its output is no longer copied, and its calls still pending
// fail with [bus.ErrClosed].
func (s *slave) letGo() {
	s.proc.letGo()
	<-s.exited
	s.finish()
}

// setRelease sets what finish calls to drop the slave's master.
func (s *slave) setRelease(release func()) {
	s.mu.Lock()
	s.release = release
	s.mu.Unlock()
}

// finish releases what the slave holds on the master, once.
func (s *slave) finish() {
	s.closeOnce.Do(func() {
		s.unsubscribe()
		s.m.forget(s)
		s.mu.Lock()
		release := s.release
		s.release = nil
		s.mu.Unlock()
		if release != nil {
			release()
		}
	})
}
