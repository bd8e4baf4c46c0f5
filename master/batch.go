package master

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// Calls by NATS go to a worker in batches (wire.Batch) when they come in
// a burst: a call sent within burstWindow of the call or batch before,
// or while calls wait already, joins those waiting in the slave's
// outbox, and a flusher goroutine sends them all in one message, as soon
// as it runs. A call alone goes at once, from the caller's goroutine;
// nothing waits to fill a batch. The worker answers the same way
// (package serve).
//
// One message for many calls spares the server and both clients the
// work of one message per call: its parsing, its routing, its wake-ups.

// burstWindow is how close after the last call sent a call must come to
// be taken for part of a burst. A call that waits for a reply before the
// next (Invoke in a loop) never comes so soon: a NATS round trip takes
// longer.
const burstWindow = 15 * time.Microsecond

// outbox holds the calls to one worker that wait to go together.
type outbox struct {
	mu       sync.Mutex
	batch    wire.Batch
	buf      []byte // the last batch built, for its memory
	flushing bool   // a flusher goroutine will send what it holds
}

// epoch is the origin of the slaves' lastSend clocks.
var epoch = time.Now()

// burst reports whether a call sent now comes in a burst: within
// burstWindow of the call before it. It notes the call's time.
func (s *slave) burst() bool {
	now := int64(time.Since(epoch))
	return now-s.lastSend.Swap(now) < int64(burstWindow)
}

// post sends data, the envelope of call id, to the worker on NATS, after
// the calls waiting in the outbox. A call that asks for an answer
// (request) may wait there, in a burst (batch); anything else (a cancel,
// a release, a close of no answer, a call of shared memory) goes at once,
// with the calls before it.
func (s *slave) post(data []byte, id uint64, request, batch bool) error {
	o := &s.out
	o.mu.Lock()
	max := s.m.maxPayload()
	// With calls waiting, the clock need not be read: the call joins them
	// (the flusher notes the time it sends them).
	if batch && request && len(data)+wire.BatchOverhead+wire.EntryOverhead+len(s.m.id) <= max && (o.batch.Len() > 0 || s.burst()) {
		var failed []uint64
		var err error
		if o.batch.Len() > 0 && o.batch.Size()+len(s.m.id)+len(data)+wire.EntryOverhead > min(max, wire.BatchLimit) {
			failed, err = s.flushLocked() // full: the calls before go now
		}
		o.batch.Add(id, data)
		if !o.flushing {
			if !s.m.startFlusher() {
				// The master closes: no goroutine outlives it.
				more, ferr := s.flushLocked()
				o.mu.Unlock()
				s.failSent(failed, err)
				s.failSent(more, ferr)
				return nil
			}
			o.flushing = true
			go s.flusher()
		}
		o.mu.Unlock()
		s.failSent(failed, err)
		return nil
	}
	failed, err := s.flushLocked()
	if err == nil {
		if request {
			err = s.m.nc.PublishRequest(s.subject, s.replySubject, data)
		} else {
			err = s.m.nc.Publish(s.subject, data)
		}
	}
	o.mu.Unlock()
	s.failSent(failed, err)
	return err
}

// startFlusher counts a flusher goroutine about to start, which
// Master.Close awaits, unless the master closes already: it reports
// whether the goroutine may start.
func (m *Master) startFlusher() bool {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	if m.flushClosed {
		return false
	}
	m.flushers.Add(1)
	return true
}

// awaitFlushers waits for the flusher goroutines, and lets no more start.
func (m *Master) awaitFlushers() {
	m.flushMu.Lock()
	m.flushClosed = true // Add after Wait began would be a misuse of the WaitGroup
	m.flushMu.Unlock()
	m.flushers.Wait()
}

// flusher sends the calls waiting in the outbox.
func (s *slave) flusher() {
	defer s.m.flushers.Done()
	o := &s.out
	o.mu.Lock()
	failed, err := s.flushLocked()
	o.flushing = false
	s.lastSend.Store(int64(time.Since(epoch))) // a call that follows soon is still part of the burst
	o.mu.Unlock()
	s.failSent(failed, err)
}

// flushLocked sends the calls waiting in the outbox, s.out.mu held: one
// alone as it is, more in a batch. When the message could not be sent,
// it returns the ids of its calls, to fail them (failSent) once the
// outbox is let go of.
func (s *slave) flushLocked() (failed []uint64, err error) {
	o := &s.out
	switch o.batch.Len() {
	case 0:
		return nil, nil
	case 1:
		err = s.m.nc.PublishRequest(s.subject, s.replySubject, o.batch.Single())
	default:
		o.buf = o.batch.AppendCalls(o.buf[:0], s.m.id)
		err = s.m.nc.PublishRequest(s.subject, s.replySubject, o.buf)
	}
	if err != nil {
		failed = append(failed, o.batch.IDs()...)
	}
	o.batch.Reset()
	return failed, err
}

// failSent fails the calls of ids, whose message could not be sent, with
// the error that says why.
func (s *slave) failSent(ids []uint64, err error) {
	if len(ids) == 0 {
		return
	}
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		err = fmt.Errorf("%w: worker %s: a batch of %d calls, over the server's max payload of %d", bus.ErrTooBig, s.id, len(ids), s.m.maxPayload())
	case errors.Is(err, nats.ErrReconnectBufExceeded):
		err = fmt.Errorf("%w: worker %s: the master's connection to NATS is down and its reconnect buffer is full: %w", bus.ErrWorkerLost, s.id, err)
	default:
		err = fmt.Errorf("worker %s: send: %w", s.id, err)
	}
	for _, id := range ids {
		s.mu.Lock()
		p := s.takeLocked(id)
		s.mu.Unlock()
		if p != nil {
			p.resolve(nil, nil, err)
		}
	}
}

// replyBatch handles a batch of replies (wire.Batch), each as if it had
// come alone. A reply that does not decode, or that the batch lost (cut
// short), fails its call with the error that says so. It runs on the
// reply subscription's goroutine, alone.
func (s *slave) replyBatch(data []byte) {
	b := &s.replies
	err := wire.DecodeReplyBatch(data, b)
	for i, env := range b.Entries {
		if err := s.handleReply(env); err != nil {
			s.failReply(b.IDs[i], fmt.Errorf("worker %s: reply %d of %d in a batch: %w", s.id, i+1, len(b.IDs), err))
		}
	}
	for i := len(b.Entries); i < len(b.IDs); i++ {
		s.failReply(b.IDs[i], fmt.Errorf("worker %s: reply %d of %d in a batch: %w", s.id, i+1, len(b.IDs), err))
	}
}

// failReply fails call id, whose reply was lost or garbled.
func (s *slave) failReply(id uint64, err error) {
	s.mu.Lock()
	p := s.takeLocked(id)
	s.mu.Unlock()
	if p != nil {
		p.resolve(nil, nil, err)
	}
}
