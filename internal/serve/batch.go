package serve

import (
	"fmt"
	"sync"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// handleBatch handles a call batch (wire.Batch): each of its calls as if
// it had come alone, in order. A call whose envelope does not decode, or
// that the batch lost (cut short), is answered with the error that says
// so, under the id the batch gives it; the others go on.
func (w *Worker) handleBatch(in *inlet, data []byte, reply string) {
	b := &in.batch
	err := wire.DecodeCallBatch(data, b)
	if len(b.IDs) == 0 {
		w.count(malformed, 0, err)
		w.replyError(reply, 0, "", err) // not one call can be named
		return
	}
	// The queue the calls start is run once they are all in it: a drainer
	// started at the first would contend for the lock with the others.
	in.holding = true
	in.at = time.Now() // one clock reading for all: they came together
	for i, env := range b.Entries {
		w.handleCallIn(in, env, reply, b.Master, b.IDs[i], i, len(b.IDs))
	}
	in.holding = false
	for i := len(b.Entries); i < len(b.IDs); i++ {
		w.replyError(reply, b.IDs[i], "", fmt.Errorf("%s: %w", inBatch(b.IDs[i], b.Master, i, len(b.IDs)), err))
	}
	if master := in.drain; master != "" && !in.inline {
		in.drain = ""
		w.spawnDrain(master)
	}
}

// handleCallIn handles env, the i-th of n calls in a batch from master
// that names it id: it must be that call's envelope.
func (w *Worker) handleCallIn(in *inlet, env []byte, reply, master string, id uint64, i, n int) {
	c := &in.call
	if err := wire.DecodeCall(env, c); err != nil {
		w.count(malformed, 0, err)
		w.replyError(reply, id, "", fmt.Errorf("%s: %w", inBatch(id, master, i, n), err))
		return
	}
	if c.ID != id || c.Master != master {
		w.replyError(reply, id, c.Function, fmt.Errorf("%w: %s, holds the envelope of call %d of master %q", bus.ErrBadPayload, inBatch(id, master, i, n), c.ID, c.Master))
		return
	}
	w.acceptCall(in, c, reply)
}

// inBatch names call id of master, the i-th (from 0) of n in a batch,
// for the errors of a call that came in one.
func inBatch(id uint64, master string, i, n int) string {
	return fmt.Sprintf("call %d of master %s, %d of %d in a batch", id, master, i+1, n)
}

// outbox holds the replies of one master's queue that wait to go in one
// NATS message: those of calls that completed while more of the queue's
// calls were waiting to run.
type outbox struct {
	mu       sync.Mutex
	batch    wire.Batch
	reply    string // the subject of the replies it holds
	flushing bool   // a flusher goroutine will send what it holds
	buf      []byte // the last message built, for its memory
}

// post sends out, the reply to cl, a call of queue q, on NATS. When calls
// of the queue wait behind cl (cl.more), it joins the replies ready
// already, which a flusher goroutine sends while the queue runs on; else
// it goes at once, with those ready, in one message. A lone call's reply
// waits for nothing.
func (w *Worker) post(cl *call, out []byte) error {
	o := &cl.q.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.batch.Len() > 0 && (o.reply != cl.reply || o.batch.Size()+len(out)+wire.EntryOverhead > min(w.maxPayload(), wire.BatchLimit)) {
		w.flushLocked(o)
	}
	if o.batch.Len() == 0 && !cl.more {
		return w.nc.Publish(cl.reply, out)
	}
	o.reply = cl.reply
	o.batch.Add(cl.key.id, out)
	if !cl.more {
		return w.flushLocked(o)
	}
	if !o.flushing {
		o.flushing = true
		w.tasks.Add(1) // Close awaits it
		go w.flusher(o)
	}
	return nil
}

// flusher sends what o holds.
func (w *Worker) flusher(o *outbox) {
	defer w.tasks.Done()
	o.mu.Lock()
	w.flushLocked(o)
	o.flushing = false
	o.mu.Unlock()
}

// flushLocked sends the replies o holds, o.mu held: one alone as it is,
// more in a batch. A failure is a closed connection, which the masters
// see as the worker's loss.
func (w *Worker) flushLocked(o *outbox) error {
	var err error
	switch o.batch.Len() {
	case 0:
		return nil
	case 1:
		err = w.nc.Publish(o.reply, o.batch.Single())
	default:
		o.buf = o.batch.AppendReplies(o.buf[:0])
		err = w.nc.Publish(o.reply, o.buf)
	}
	o.batch.Reset()
	return err
}
