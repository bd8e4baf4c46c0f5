package serve

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/internal/wire"
)

// A reader that starts a master's queue runs it itself (drainInline):
// the call and its reply then cost no goroutine wake-up, which on a busy
// machine costs more than the call. Should the queue run longer than
// reliefDelay, a new reader takes the source over (relieve), so that
// cancels, concurrent calls and other masters' calls are read
// meanwhile; the relieved reader ends with the queue. Two sources work
// so: the lane, and the NATS call subscription.

// reliefDelay is how long a reader runs a queue before another goroutine
// takes its source over; the lease ticker looks, so it is at most a
// leaseTick more.
const reliefDelay = 500 * time.Microsecond

// inlineRun is the state of one source's reader as it runs a queue.
type inlineRun struct {
	state atomic.Uint64 // a sequence number, shifted; odd while the reader runs a queue
	seq   atomic.Uint64
	at    atomic.Int64 // when the queue run began, since the worker's birth
}

// drainInline runs master's queue on the reader of run, and reports
// whether the reader still reads its source (it was not relieved). It
// arms no timer: adding one wakes an idle thread, on every call.
func (w *Worker) drainInline(run *inlineRun, master string) bool {
	v := run.seq.Add(1)<<1 | 1 // odd: running a queue
	run.at.Store(int64(time.Since(w.born)))
	run.state.Store(v)
	w.drain(master)
	return run.state.CompareAndSwap(v, v&^1)
}

// relieve starts a new reader (start, counted in readers) when run's
// reader has run a queue for longer than reliefDelay; the lease ticker
// calls it.
func (w *Worker) relieve(run *inlineRun, readers *sync.WaitGroup, start func()) {
	v := run.state.Load()
	if v&1 == 0 || time.Since(w.born)-time.Duration(run.at.Load()) < reliefDelay {
		return
	}
	readers.Add(1) // before the CAS: the reader it relieves may return at once
	if run.state.CompareAndSwap(v, v&^1) {
		go start()
		return
	}
	readers.Done()
}

// callChanLen is how many messages the call subscription holds unread:
// nats.go's own default for a synchronous subscription. Past it, the
// client drops messages (a slow consumer): the worker then bumps its
// epoch, as after a reconnect, and its masters fail their calls in
// flight rather than wait for replies that will not come.
const callChanLen = 1 << 16

// handleMsg handles one message of the call subscription: a call, a
// batch of calls, or a chunk of a call.
func (w *Worker) handleMsg(msg *nats.Msg) {
	switch data := msg.Data; {
	case wire.IsCallChunk(data):
		w.chunk(msg)
	case wire.IsCallBatch(data):
		w.handleBatch(&w.natsIn, data, msg.Reply)
	default:
		w.handleCall(&w.natsIn, data, msg.Reply)
	}
}

// serveCalls reads the call subscription's messages, in order, until
// the worker closes, or until a relief reader takes over (drainInline).
func (w *Worker) serveCalls() {
	defer w.callReaders.Done()
	for {
		var msg *nats.Msg
		select {
		case msg = <-w.callCh:
		case <-w.callStop:
			// Unsubscribed: what came before is answered (refused: the
			// worker closes), then the reader ends.
			for {
				select {
				case msg = <-w.callCh:
					w.handleMsg(msg)
				default:
					return
				}
			}
		}
		w.handleMsg(msg)
		if master := w.natsIn.drain; master != "" && len(w.callCh) == 0 {
			// The messages already here first: the queue then runs
			// their calls in one go.
			w.natsIn.drain = ""
			if !w.drainInline(&w.natsRun, master) {
				return // a relief reads the calls now
			}
		}
	}
}

// relieveCalls starts a new call reader when the reader has run a queue
// for longer than reliefDelay.
func (w *Worker) relieveCalls() {
	w.relieve(&w.natsRun, &w.callReaders, w.serveCalls)
}

// slowCalls handles the client's dropping of call messages past
// callChanLen: lost calls, as across a reconnect.
func (w *Worker) slowCalls() {
	w.epoch.Add(1)
	slog.Warn("processional: the worker dropped calls it could not read in time (a slow consumer); its masters fail the calls in flight", "worker", w.id, "epoch", w.epoch.Load())
}

// stopCalls ends the call subscription, and its readers once they have
// answered what it delivered.
func (w *Worker) stopCalls() {
	if w.callSub == nil {
		return
	}
	w.callSub.Unsubscribe()
	close(w.callStop)
	w.callReaders.Wait()
}
