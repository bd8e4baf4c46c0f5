package master

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/lane"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/shm"
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
	// progress records the latest progress report, encoded.
	progress(raw []byte)
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

func (s *slave) onReply(msg *nats.Msg) {
	if len(msg.Data) == 0 { // the marker drainReplies sent itself
		s.mu.Lock()
		ch := s.drained
		s.drained = nil
		s.mu.Unlock()
		if ch != nil {
			close(ch)
		}
		return
	}
	// A reply is a sign of life as good as a heartbeat's answer: a worker
	// whose connection holds a backlog of calls reads its heartbeats late,
	// and must not be taken for lost while it answers.
	s.lastAck.Store(time.Now().UnixNano())
	if wire.IsReplyChunk(msg.Data) {
		s.replyChunk(msg)
		return
	}
	if wire.IsReplyBatch(msg.Data) {
		s.replyBatch(msg.Data)
		return
	}
	s.handleReply(msg.Data)
}

// handleReply handles one reply envelope, sent whole or joined from
// chunks. It returns the error of an envelope it cannot decode.
func (s *slave) handleReply(data []byte) error {
	id, status, raw, remote, err := wire.DecodeReplyStatus(data)
	if id == 0 {
		return err // not an answer to a call of ours
	}
	if status == wire.StatusProgress && err == nil {
		s.mu.Lock()
		p := s.pending.peek(id)
		s.mu.Unlock()
		if p != nil {
			p.progress(append([]byte(nil), raw...)) // the message's buffer may serve again
		}
		return nil
	}
	if status == wire.StatusItem && err == nil {
		s.mu.Lock()
		p := s.pending.peek(id)
		s.mu.Unlock()
		if st, ok := p.(*streamCall); ok {
			st.item(raw, len(data))
		} else if s.shmPID != 0 && codec.HasShm(raw) {
			codec.DropTransits(raw) // no stream waits for it: its segments need not wait for us
		}
		return nil
	}
	if id == closeID {
		s.markGone() // the worker ran our calls and forgot us
		return nil
	}
	if err != nil {
		err = fmt.Errorf("worker %s: %w", s.id, err)
	}
	s.mu.Lock()
	p := s.takeLocked(id)
	s.mu.Unlock()
	if p == nil {
		switch {
		case raw != nil && wire.IsRef(raw):
			if o, err := wire.DecodeRef(raw); err == nil {
				s.releaseGrant(o) // nobody waits for this reference
			}
		case s.shmPID != 0 && raw != nil && codec.HasShm(raw):
			codec.DropTransits(raw) // nobody will decode it: its segments need not wait for us
		}
		return nil // cancelled, or answered already
	}
	if s.shmPID != 0 && raw != nil && codec.HasShm(raw) {
		p.guardShm(raw)
	}
	if remote != nil && errors.Is(remote, bus.ErrLeaseLapsed) {
		// The worker dropped this master (its lease lapsed there) and
		// refuses its calls for a while: as when a heartbeat is answered
		// so, the worker is lost to us, and a pool picks it no more
		// (lost before the task ends, so that a retry picks another).
		s.declareLost(remote)
	}
	p.resolve(raw, remote, err)
	return nil
}

var codecs = sync.Pool{New: func() any { return new(callCodec) }}

// watchMode says who fails a remote task when its caller's context ends.
type watchMode uint8

const (
	// watchNone: the caller, who waits for the task at once (Invoke's
	// wait, a retry's).
	watchNone watchMode = iota
	// watchGroup: the slave, through its group for the context
	// (ctxGroup), or the task's own watch if the context cannot key one.
	watchGroup
	// watchIfBusy: watchGroup when the slave has calls in flight already
	// and the context can key a group, else watchNone (Invoke). Many
	// callers under one context then wait each for its own task, not all
	// on the context's Done channel, whose lock they would contend for;
	// a lone call costs no group made and dropped.
	watchIfBusy
)

// send publishes one call and registers t for its reply; watch says who
// fails t when ctx ends. It fails t when the call cannot be sent.
func (s *slave) send(ctx context.Context, kind wire.Kind, fn, argType string, arg any, t pendingCall, watch watchMode) {
	c := wire.Call{Kind: kind, Master: s.m.id, Function: fn, ArgType: argType}
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
	if ctx.Done() == nil {
		watch = watchNone // it never ends
	}
	comparable := watch != watchNone && reflect.TypeOf(ctx).Comparable() // can key a group
	perTask := watch == watchGroup && !comparable
	buf := chunks.GetBuffer()
	defer putBuffer(&buf) // the encoding may grow it: the one it ends in goes back
	s.mu.Lock()
	if s.state != slaveOpen {
		err := s.closedErr()
		s.mu.Unlock()
		t.resolve(nil, nil, err)
		return
	}
	if comparable && (watch == watchGroup || watch == watchIfBusy && s.pending.live > 0) {
		t.setGroup(s.groupLocked(ctx))
	}
	c.ID = s.pending.add(t)
	s.mu.Unlock()
	c.PID = s.selfPID
	cc := codecs.Get().(*callCodec)
	cc.shmPID, cc.maxValue, cc.lane = s.shmPID, uint64(s.m.maxValue), s.laneLive()
	data, err := wire.AppendCallWith(buf[:0], &c, arg, cc)
	if len(cc.pins) > 0 {
		t.setPins(cc.pins) // before the call goes: its reply may come at once
		cc.pins = nil
	}
	sending, refersShm := cc.sending, cc.shm
	cc.sending, cc.shm = nil, false
	codecs.Put(cc)
	switch {
	case errors.Is(err, shm.ErrNoProcess):
		// A buffer was to go by reference to the worker's process, which
		// is gone: the worker died, and the master has not seen it yet
		// (a worker reached by NATS is seen at the lease).
		err = fmt.Errorf("%w: worker %s (pid %d) no longer runs: %s: argument: %w", bus.ErrWorkerLost, s.id, s.shmPID, fn, err)
		// Lost for every call, not this one alone: a pool picks it no
		// more, and its calls in flight fail now rather than at the lease.
		s.declareLost(err)
	case err != nil:
		err = fmt.Errorf("worker %s: %s: argument: %w", s.id, fn, err)
	default:
		buf = data
		// A big call goes alone, and so does one that refers to shared
		// memory: should its message fail, its segments are dropped at
		// once (below).
		alone := len(data) > wire.MaxBatched || len(sending) > 0 || refersShm
		err = s.sendCall(ctx, c.ID, fn, data, !alone)
	}
	if err != nil {
		s.mu.Lock()
		s.takeLocked(c.ID)
		s.mu.Unlock()
		if s.shmPID != 0 && data != nil {
			codec.CancelTransits(data) // never sent: its segments need not wait for the worker
		}
		closeAll(sending)
		t.resolve(nil, nil, err)
		return
	}
	closeAll(sending) // sent: the transits hold them for the worker
	t.sent(s, c.ID)
	if perTask {
		t.watch(ctx)
	}
}

// putBuffer gives *b back to the chunks' buffers.
func putBuffer(b *[]byte) { chunks.PutBuffer(*b) }

// closeAll closes the transient segments a call or a reply was sent with.
func closeAll(bufs []*shm.Transient) {
	for _, b := range bufs {
		b.Close()
	}
}

// sendCall sends call id to fn, encoded in data: on the lane, in one
// frame however big (the lane has no max payload); or by NATS, in chunks
// past the server's max payload, else in a batch with the calls of its
// burst when batch is set (post). Past the master's max value it is
// refused before anything is sent.
func (s *slave) sendCall(ctx context.Context, id uint64, fn string, data []byte, batch bool) error {
	if s.lane != nil && int64(len(data)) <= s.m.maxValue {
		// In a burst, the lane's flusher writes the call with those that
		// follow it, many to a system call; else it goes at once.
		if sent, err := s.viaLaneQueued(lane.Call, data, batch && s.burst()); sent {
			return err
		}
	}
	if len(data) > s.m.maxPayload() || int64(len(data)) > s.m.maxValue {
		return s.sendChunked(ctx, id, fn, data) // or refuse it past maxValue
	}
	err := s.post(data, id, true, batch)
	if errors.Is(err, nats.ErrMaxPayload) {
		// The max payload read was an earlier server's: read it again,
		// and send the call in chunks if it is over the new one.
		s.m.maxPay.Reset()
		if len(data) > s.m.maxPayload() {
			return s.sendChunked(ctx, id, fn, data)
		}
	}
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("%w: worker %s: %s: the call is %d bytes, over the server's max payload of %d", bus.ErrTooBig, s.id, fn, len(data), s.m.maxPayload())
	case errors.Is(err, nats.ErrReconnectBufExceeded):
		// Not sent: the connection is down, and the calls sent since it
		// dropped fill its buffer.
		return fmt.Errorf("%w: worker %s: %s: the master's connection to NATS is down and its reconnect buffer is full: %w", bus.ErrWorkerLost, s.id, fn, err)
	case err != nil:
		return fmt.Errorf("worker %s: %s: send: %w", s.id, fn, err)
	}
	return nil
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
	s.pending.each(func(_ uint64, p pendingCall) {
		if p.group() == g {
			victims = append(victims, p)
		}
	})
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
		s.control(wire.KindCancel, id)
	}
}

func (s *slave) control(kind wire.Kind, id uint64) error {
	data, err := wire.AppendCall(nil, &wire.Call{Kind: kind, Master: s.m.id, ID: id}, nil)
	if err != nil {
		return err
	}
	return s.publish(data)
}

// publish sends the worker a call envelope that wants no answer: on the
// lane, or by NATS.
func (s *slave) publish(data []byte) error {
	if sent, err := s.viaLane(lane.Send, data); sent {
		return err
	}
	return s.post(data, 0, false, false)
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
