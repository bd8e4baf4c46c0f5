package serve

import (
	"fmt"
	"sync"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// Streams. A stream runs as a concurrent call; its items go back as item
// replies, in order, each once the master has granted credit for it
// (wire.KindCredit): a window of items, and of bytes in flight. A yield
// with no credit waits, and the producer with it: a slow consumer holds
// the producer back. The master's credits after the first acknowledge
// the items it consumed.

// streamState is a running stream's flow control.
type streamState struct {
	mu       sync.Mutex
	cond     sync.Cond
	items    uint64   // items the master allows more
	maxBytes uint64   // the most bytes of items in flight; 0 until the first credit
	inFlight uint64   // bytes of the items sent and not acknowledged
	sizes    []uint64 // their sizes, oldest first
	ended    bool     // the producer returned, or refused: emit sends no more
	sent     int      // items sent
	err      error    // an item that could not be sent: the stream's error
}

func newStreamState() *streamState {
	st := new(streamState)
	st.cond.L = &st.mu
	return st
}

// credit handles a credit to stream key.
func (w *Worker) credit(key callKey, arg []byte) {
	items, bytes, err := wire.DecodeCredit(arg)
	w.mu.Lock()
	cl := w.threads[key]
	w.mu.Unlock()
	if cl == nil || cl.stream() == nil {
		return // ended already
	}
	st := cl.stream()
	st.mu.Lock()
	defer st.mu.Unlock()
	if err != nil {
		st.err = fmt.Errorf("master %s: %w", key.master, err)
		st.ended = true
		st.cond.Broadcast()
		return
	}
	st.items += items
	if bytes != 0 {
		st.maxBytes = bytes // the window, with the first items
	} else {
		for n := items; n > 0 && len(st.sizes) > 0; n-- { // consumed
			st.inFlight -= st.sizes[0]
			st.sizes = st.sizes[1:]
		}
	}
	st.cond.Broadcast()
}

// emit sends one item of stream cl once the master allows it, and
// reports whether the stream goes on: false once its context ended, the
// producer returned, or the item could not be sent.
func (w *Worker) emit(cl *call, item any) bool {
	st := cl.stream()
	st.mu.Lock()
	defer st.mu.Unlock()
	for !st.ended && cl.ctx.Err() == nil && (st.items == 0 || len(st.sizes) > 0 && st.inFlight >= st.maxBytes) {
		st.cond.Wait()
	}
	if st.ended || cl.ctx.Err() != nil {
		return false
	}
	// The first item goes at once; the next ones, on the lane, are
	// queued for its flusher, which writes those queued meanwhile
	// together: a fast producer's items go many to a system call.
	n, err := w.sendResult(cl.reply, cl.key.id, cl.name, item, cl, itemQueued(st.sent > 0))
	if err != nil {
		st.err, st.ended = err, true
		return false
	}
	st.items--
	st.sent++
	st.sizes = append(st.sizes, uint64(n))
	st.inFlight += uint64(n)
	return true
}

// runStream runs stream cl to its end, and returns its error.
func (w *Worker) runStream(cl *call) error {
	st := cl.stream()
	stop := cl.ctx.AfterFunc(func() { // wakes a yield waiting for credit
		st.mu.Lock()
		st.cond.Broadcast()
		st.mu.Unlock()
	})
	defer stop()
	err := cl.fn.Stream(&cl.ctx, cl.arg, cl.argType, w.peer, func(item any) bool { return w.emit(cl, item) })
	st.mu.Lock()
	st.ended = true // a yield from a goroutine the producer left behind sends nothing now
	if st.err != nil {
		err = st.err
	}
	st.mu.Unlock()
	return err
}

// notStream is the error of an object operation called as a stream.
func notStream(name string) error {
	return fmt.Errorf("%w: %s is an object operation, not a stream", bus.ErrNotStream, name)
}
