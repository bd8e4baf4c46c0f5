package serve

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/lazyctx"
	"github.com/processional/processional/internal/registry"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/shm"
)

type callKey struct {
	master string
	id     uint64
}

// A call is allocated for each call the worker runs: what few calls
// need lives apart (callRare), so that a small blocking call, the
// commonest, costs a smaller allocation.
type call struct {
	key      callKey
	fn       *registry.Function // the function called, or nil for an object operation
	op       opFunc             // the object operation called, or nil
	name     string             // the function's or operation's name
	since    time.Duration      // when the call arrived, since the worker's birth (w.born)
	argType  string
	arg      []byte
	reply    string
	ctx      lazyctx.Ctx
	w        *Worker
	progress atomic.Pointer[progress] // the call's reports (bus.Progress), made at the first
	q        *queue                   // the queue running it, whose outbox its NATS reply may join; nil for a concurrent call
	x        *callRare                // nil until needed
	pid      int32                    // the caller's pid when it shares our /dev/shm, else 0
	lapsed   atomic.Bool              // its master's lease lapsed: reply ErrLeaseLapsed
	kind     wire.Kind
	shmSent  bool // its reply refers to shared-memory buffers by reference
	more     bool // calls of its queue wait behind it: its reply may wait for theirs, or for the flusher
	encoded  bool // its reply is encoded whole in its queue's buffer (q.scratch): see invoke
}

// callRare is what few calls need.
type callRare struct {
	pinned  []*object        // objects of this worker an operation works on: its target and arguments
	sending []*shm.Transient // transient segments made for the reply, closed once it is sent
	joined  []byte           // the buffer the call was joined in from chunks, to give back once it ran
	stream  *streamState     // a stream's flow control; nil for any other call
	done    chan struct{}    // a concurrent call's: closed when it has replied
}

// rare is what few calls need, made now if it was not: by the
// goroutine that runs the call, or before it starts.
func (cl *call) rare() *callRare {
	if cl.x == nil {
		cl.x = new(callRare)
	}
	return cl.x
}

// stream is the flow control of a stream call, nil for any other.
func (cl *call) stream() *streamState {
	if cl.x == nil {
		return nil
	}
	return cl.x.stream
}

// joined is the buffer the call was joined in from chunks, if it was.
func (cl *call) joined() []byte {
	if cl.x == nil {
		return nil
	}
	return cl.x.joined
}

// putJoined gives the buffer the call was joined in back to the chunks'
// buffers, once its argument is decoded or will never be.
func (cl *call) putJoined() {
	if j := cl.joined(); j != nil {
		chunks.PutBuffer(j)
		cl.x.joined, cl.arg = nil, nil
	}
}

// sending is the transient segments made for the call's reply.
func (cl *call) sending() []*shm.Transient {
	if cl.x == nil {
		return nil
	}
	return cl.x.sending
}

// SentShm notes that the call's reply refers to a shared-memory buffer
// by reference (codec.ShmSender).
func (cl *call) SentShm() { cl.shmSent = true }

// ShmReceiver is the pid the call's result sends shared-memory buffers
// to by reference (codec.ShmReceiver).
func (cl *call) ShmReceiver() int { return int(cl.pid) }

// TransientTo is the pid a big result goes to in a transient segment:
// the caller's when it shares our /dev/shm, unless the reply goes on the
// lane, where one frame costs less (codec.TransientReceiver).
func (cl *call) TransientTo() int {
	if cl.reply == laneReply {
		return 0
	}
	return int(cl.pid)
}

// MaxValue is the largest result the worker sends
// (codec.TransientReceiver).
func (cl *call) MaxValue() uint64 { return cl.w.maxValue }

// Sending keeps a transient segment made for the reply, to close once it
// is sent (codec.TransientReceiver).
func (cl *call) Sending(t *shm.Transient) { x := cl.rare(); x.sending = append(x.sending, t) }

// cancel ends the call's context with err.
func (cl *call) cancel(err error) { cl.ctx.Cancel(err) }

// handleJoined handles a call joined from chunks; its buffer goes back to
// the chunks' buffers once the call has run.
func (w *Worker) handleJoined(in *inlet, data []byte, reply string) error {
	in.joined = data
	err := w.handleCall(in, data, reply)
	if in.joined != nil { // not taken by a call: it was refused at once
		chunks.PutBuffer(in.joined)
		in.joined = nil
	}
	return err
}

// refuse answers cl, which will not run, with err, and lets go of what
// it holds: its context, the shared memory its argument refers to (never
// decoded: the buffers need not wait for us), its joined buffer.
func (w *Worker) refuse(cl *call, err error) {
	cl.cancel(context.Canceled)
	if cl.pid != 0 {
		codec.DropTransits(cl.arg)
	}
	cl.putJoined()
	w.replyError(cl.reply, cl.key.id, cl.name, err)
}

// handleCall handles one call envelope, sent whole or joined from
// chunks. It returns the error of an envelope it cannot decode, which it
// answered with id 0.
func (w *Worker) handleCall(in *inlet, data []byte, reply string) error {
	c := &in.call // one goroutine per inlet
	if err := wire.DecodeCall(data, c); err != nil {
		w.count(malformed, 0, err)
		w.replyError(reply, 0, "", err)
		return err
	}
	in.at = time.Now()
	w.acceptCall(in, c, reply)
	return nil
}

// acceptCall handles the call c, decoded from in, which it reuses; it
// arrived at in.at.
func (w *Worker) acceptCall(in *inlet, c *wire.Call, reply string) {
	if c.Master == "" {
		w.replyError(reply, c.ID, c.Function, fmt.Errorf("%w: a %s with no master id", bus.ErrBadPayload, c.Kind))
		return
	}
	key := callKey{c.Master, c.ID}
	switch c.Kind {
	case wire.KindCancel:
		w.cancelCall(key)
		return
	case wire.KindCredit:
		w.credit(key, c.Arg)
		return
	case wire.KindDetach, wire.KindPersist:
		if w.owner == "" || c.Master != w.owner {
			w.replyError(reply, c.ID, "", fmt.Errorf("%w: %s from master %s, which does not own worker %s", bus.ErrNotOwner, c.Kind, c.Master, w.id))
			return
		}
		w.persistent.Store(true) // the owner's lease and death no longer matter
		w.publishReply(reply, c.ID, "", struct{}{}, nil)
		if c.Kind == wire.KindPersist {
			return
		}
		// Detach: the owner stops heartbeating, and its queued calls run
		// to the end all the same; then the worker exits, as on a close.
		w.mu.Lock()
		delete(w.leases, c.Master)
		w.gone[c.Master] = goneMaster{until: time.Now().Add(24 * time.Hour)}
		w.mu.Unlock()
		c.Kind, reply = wire.KindClose, "" // acknowledged already
		fallthrough
	case wire.KindClose:
		w.mu.Lock()
		if w.closing {
			// No new drainer may start now, but the master's calls may
			// still run: the close waits for them all the same.
			cl := &call{key: key, kind: wire.KindClose, reply: reply}
			if q := w.masters[c.Master]; q != nil && q.running {
				w.enqueueLocked(cl) // its drainer is running: it takes this too
				w.mu.Unlock()
				return
			}
			if w.hasThreadsLocked(c.Master) {
				w.tasks.Add(1) // its concurrent calls hold the count above zero
				w.mu.Unlock()
				go func() {
					defer w.tasks.Done()
					w.closeMaster(c.Master, cl)
				}()
				return
			}
			w.mu.Unlock()
			w.publishReply(reply, key.id, "", struct{}{}, nil)
			return
		}
		start := w.enqueueLocked(&call{key: key, kind: wire.KindClose, reply: reply})
		w.mu.Unlock()
		if start {
			w.startDrain(in, c.Master)
		}
		return
	}
	var (
		fn *registry.Function
		op opFunc
		ok bool
	)
	switch {
	case in.fn != nil && in.fn.Name() == c.Function: // functions are never unregistered
		fn, ok = in.fn, true
	case wire.IsOp(c.Function):
		op, ok = ops[c.Function]
	default:
		if fn, ok = registry.Lookup(c.Function); ok {
			in.fn = fn
		}
	}
	if !ok {
		w.replyError(reply, c.ID, c.Function, fmt.Errorf("%w %q on worker %s", bus.ErrUnknownFunction, c.Function, w.id))
		return
	}
	if c.Kind == wire.KindStream && op != nil {
		w.replyError(reply, c.ID, c.Function, notStream(c.Function))
		return
	}
	cl := &call{key: key, kind: c.Kind, fn: fn, op: op, name: c.Function, argType: c.ArgType, arg: c.Arg, reply: reply, pid: int32(c.PID), w: w}
	cl.ctx.Progress = cl
	if in.joined != nil {
		cl.rare().joined, in.joined = in.joined, nil
	}
	cl.since = in.at.Sub(w.born)
	// The context has no worker-wide parent: a child of a cancelable
	// parent costs a map insert and delete in the parent on every call.
	// Abort cancels the running calls one by one.
	if c.Timeout > 0 {
		cl.ctx.SetTimeout(c.Timeout)
	}
	// A call that wants no answer (a release): nobody cancels it or waits
	// for it, and its id is not unique.
	noAnswer := c.Kind == wire.KindThread && reply == "" && c.ID == 0
	w.mu.Lock()
	// A lapsed master is told so before a closing worker's refusal: the
	// owner's lapse is why a spawned worker closes.
	if len(w.gone) > 0 {
		if g, ok := w.gone[c.Master]; ok && g.lapsed && time.Now().Before(g.until) {
			w.mu.Unlock()
			w.refuse(cl, fmt.Errorf("%w: worker %s dropped master %s, which sent no heartbeat for a whole lease", bus.ErrLeaseLapsed, w.id, c.Master))
			return
		}
	}
	if w.closing {
		w.mu.Unlock()
		w.refuse(cl, fmt.Errorf("%w: worker %s is closing", bus.ErrClosed, w.id))
		return
	}
	// A call is a sign of its master's life as good as a heartbeat: behind
	// a backlog of calls on the connection, heartbeats are read late.
	// Only a lease that still holds: a lapse the watcher has yet to see
	// is a lapse.
	if l := w.leases[c.Master]; l != nil && in.at.After(l.last) && in.at.Sub(l.last) <= l.length {
		l.last = in.at
	}
	// Every call counts until it has run (see run); only a release, which
	// nobody could be told of, is never refused.
	if n := w.pending.Add(1); n > w.maxPending && !noAnswer {
		w.pending.Add(-1)
		w.mu.Unlock()
		w.refuse(cl, fmt.Errorf("%w: worker %s holds %d calls, queued or running, at its limit of %d: call refused", bus.ErrOverloaded, w.id, n-1, w.maxPending))
		return
	}
	if noAnswer {
		w.tasks.Add(1)
		w.mu.Unlock()
		go func() {
			defer w.tasks.Done()
			w.run(cl)
		}()
		return
	}
	if c.Kind == wire.KindStream {
		cl.rare().stream = newStreamState()
	}
	if c.Kind == wire.KindThread || c.Kind == wire.KindStream {
		cl.rare().done = make(chan struct{})
		w.threads[key] = cl
		w.tasks.Add(1)
		w.mu.Unlock()
		go func() {
			defer w.tasks.Done()
			defer close(cl.x.done)
			w.run(cl)
		}()
		return
	}
	start := w.enqueueLocked(cl)
	w.mu.Unlock()
	if start {
		w.startDrain(in, c.Master)
	}
	return
}

// run calls cl's function behind recover and sends its reply.
func (w *Worker) run(cl *call) {
	var (
		res any
		err error
	)
	if err = cl.ctx.Err(); err == nil && w.aborted.Load() {
		err = context.Canceled
	}
	if err == nil {
		start := time.Since(w.born) // the monotonic clock alone: half a time.Now
		res, err = w.invoke(cl)
		w.count(cl.name, time.Since(w.born)-start, err)
	} else if cl.pid != 0 {
		codec.DropTransits(cl.arg) // never decoded: the buffers it refers to need not wait for us
	}
	cl.putJoined() // the argument is decoded: its chunks' buffer can serve again
	if err != nil && cl.lapsed.Load() {
		err = fmt.Errorf("%w: worker %s heard no heartbeat from master %s for a whole lease and dropped its calls", bus.ErrLeaseLapsed, w.id, cl.key.master)
	}
	if cl.kind == wire.KindThread || cl.kind == wire.KindStream {
		w.mu.Lock()
		delete(w.threads, cl.key)
		w.mu.Unlock()
	}
	cl.cancel(context.Canceled)
	cl.endProgress()
	w.pending.Add(-1) // counted when handleCall accepted it
	if cl.reply == "" {
		return
	}
	if err != nil {
		w.replyErrorTo(cl, cl.reply, cl.key.id, cl.name, err)
		return
	}
	w.publishReply(cl.reply, cl.key.id, cl.name, res, cl)
}

func (w *Worker) invoke(cl *call) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = wire.NewPanicError(r)
		}
	}()
	if cl.op != nil {
		defer w.unpinArgs(cl)
		return cl.op(w, cl)
	}
	if cl.stream() != nil {
		return nil, w.runStream(cl)
	}
	if cl.q != nil {
		// A queued call's small result is encoded by the function's own
		// typed code, behind the reply's head, in the queue's buffer,
		// where sendResult finds it: the result is never boxed.
		out, res, encoded, err := cl.fn.InvokeAppend(&cl.ctx, cl.arg, cl.argType, w.peer, wire.AppendReplyHead(cl.q.scratch[:0], cl.key.id))
		if encoded {
			cl.q.scratch, cl.encoded = out, true
		}
		return res, err
	}
	return cl.fn.InvokeWith(&cl.ctx, cl.arg, cl.argType, w.peer)
}
