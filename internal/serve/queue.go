package serve

import (
	"context"
	"fmt"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// queue holds one master's blocking calls, run one after the other.
//
// Blocking calls are not kept in a map by id, which would hash each of a
// hundred thousand calls in flight in and out: a cancel finds its call as
// the queue's current one, or is noted in cancelled for when the call
// comes out of the queue.
type queue struct {
	items     []*call
	running   bool
	current   *call           // the call running now, if any
	batch     []*call         // the calls its drainer took out of items; nil once run
	closed    bool            // the master closed: forget the queue once it is empty
	dropped   bool            // the master's lease lapsed: cancel every call before it runs
	cancelled map[uint64]bool // ids cancelled while queued; cleared when the queue empties
	out       outbox          // replies ready, waiting to go in one message
	scratch   []byte          // the buffer its results are encoded in, by its drainer alone (sendResult)
}

// enqueueLocked appends cl to its master's queue, with w.mu held. It
// reports whether the caller must start the queue's drainer.
func (w *Worker) enqueueLocked(cl *call) (start bool) {
	q := w.masters[cl.key.master]
	if q == nil {
		q = new(queue)
		w.masters[cl.key.master] = q
	}
	q.items = append(q.items, cl)
	if q.running {
		return false
	}
	q.running = true
	w.tasks.Add(1)
	return true
}

// cancelCall cancels the context of call key, running or queued.
func (w *Worker) cancelCall(key callKey) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.joining, key) // a call cancelled while its chunks arrive
	if cl := w.threads[key]; cl != nil {
		cl.cancel(context.Canceled)
		return
	}
	q := w.masters[key.master]
	if q == nil || !q.running {
		return // finished already: nothing to cancel
	}
	if q.current != nil && q.current.key.id == key.id {
		q.current.cancel(context.Canceled)
		return
	}
	if q.cancelled == nil {
		q.cancelled = make(map[uint64]bool)
	}
	q.cancelled[key.id] = true
}

// startDrain has a drainer run master's queue: an idle one if there is
// one, else a new goroutine, counted in w.idleDrainers, which Close awaits.
//
// Drainers outlive their queue for a while, so that a worker answering one
// call at a time (a method call through a Ref, deep in reflection and
// msgpack) runs it on a grown stack, not on a new goroutine's.
//
// The reader of the lane, or of the call subscription, runs the queue
// itself (in.drain; see drainInline): handing it to another goroutine
// would cost a wake-up on the call's path. It runs one at a time; the
// queue of another master that starts meanwhile goes to a drainer.
func (w *Worker) startDrain(in *inlet, master string) {
	if (in.inline || in.holding) && in.drain == "" {
		in.drain = master
		return
	}
	w.spawnDrain(master) // the reader runs another master's queue already
}

// spawnDrain has an idle drainer, or a new one, run master's queue.
func (w *Worker) spawnDrain(master string) {
	select {
	case w.drainers <- master:
	default:
		w.idleDrainers.Add(1)
		go w.drainLoop(master)
	}
}

// drainIdle is how long a drainer waits for another queue before it exits.
const drainIdle = 2 * time.Second

func (w *Worker) drainLoop(master string) {
	defer w.idleDrainers.Done()
	idle := time.NewTimer(drainIdle)
	defer idle.Stop()
	for {
		w.drain(master)
		idle.Reset(drainIdle)
		select {
		case master = <-w.drainers:
		case <-idle.C:
			return
		case <-w.drainStop:
			return
		}
	}
}

// drain runs one master's queued calls in order and returns when the
// queue is empty.
func (w *Worker) drain(master string) {
	defer w.tasks.Done()
	w.mu.Lock()
	q := w.masters[master]
	w.mu.Unlock()
	var batch []*call
	for {
		w.mu.Lock()
		if n := len(batch); n > 0 { // the last call of the batch before ran
			q.current, batch[n-1] = nil, nil
		}
		if len(q.items) == 0 {
			q.running = false
			q.cancelled = nil // what is left names calls that ran already
			if q.closed && w.masters[master] == q {
				delete(w.masters, master)
			}
			w.mu.Unlock()
			return
		}
		batch, q.items = q.items, batch[:0]
		q.batch = batch // for Pending: the calls of batch not run yet are queued
		w.mu.Unlock()
		// One lock a call: it forgets the call before as it takes this one.
		for i, cl := range batch {
			w.mu.Lock()
			if i > 0 {
				q.current, batch[i-1] = nil, nil
			}
			if cl.kind == wire.KindClose {
				w.mu.Unlock()
				if cl.reply != laneReply {
					cl.q = q // its reply goes after the replies q holds
				}
				w.closeMaster(master, cl)
				continue
			}
			if q.dropped {
				cl.lapsed.Store(true)
			}
			if q.cancelled[cl.key.id] || q.dropped {
				delete(q.cancelled, cl.key.id)
				cl.cancel(context.Canceled)
			}
			q.current = cl
			cl.more = i < len(batch)-1 || len(q.items) > 0
			if cl.reply != laneReply {
				cl.q = q
			}
			w.mu.Unlock()
			w.run(cl)
		}
	}
}

// hasThreadsLocked reports whether master has concurrent calls running;
// w.mu held.
func (w *Worker) hasThreadsLocked(master string) bool {
	for key := range w.threads {
		if key.master == master {
			return true
		}
	}
	return false
}

// closeMaster handles a master's close request, once its earlier calls
// have run.
func (w *Worker) closeMaster(master string, cl *call) {
	w.mu.Lock()
	if q := w.masters[master]; q != nil {
		q.closed = true // drain forgets the queue once empty
	}
	var threads []chan struct{}
	for key, t := range w.threads {
		if key.master == master {
			threads = append(threads, t.x.done)
			if t.stream() != nil {
				// A stream waits for its consumer, which waits for the
				// close: it ends now, its producer cancelled.
				t.cancel(fmt.Errorf("%w: master %s closed the worker", bus.ErrClosed, master))
			}
		}
	}
	w.mu.Unlock()
	for _, done := range threads { // its concurrent calls reply first
		<-done
	}
	w.mu.Lock()
	if l := w.leases[master]; l != nil {
		// A master that closed holds no lease, and the heartbeats it
		// sent before it knew do not give it one back.
		w.gone[master] = goneMaster{until: time.Now().Add(2 * l.length)}
		delete(w.leases, master)
	}
	w.mu.Unlock()
	w.dropHolder(master)
	if cl.reply != "" {
		w.publishReply(cl.reply, cl.key.id, "", struct{}{}, cl)
	}
	if w.owner != "" && master == w.owner {
		w.stopOnce.Do(func() { close(w.stopping) })
	}
}
