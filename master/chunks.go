package master

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/internal/wire"
)

// sendChunked sends call id, larger than the server's max payload, in
// chunks, or refuses it past the master's limit before anything is sent.
func (s *slave) sendChunked(ctx context.Context, id uint64, fn string, data []byte) error {
	if int64(len(data)) > s.m.maxValue {
		return fmt.Errorf("%w: worker %s: %s: the call is %d bytes, over the limit of %d (master.WithMaxValue)", bus.ErrTooBig, s.id, fn, len(data), s.m.maxValue)
	}
	s.out.mu.Lock() // the calls waiting to go, first
	failed, err := s.flushLocked()
	s.out.mu.Unlock()
	s.failSent(failed, err)
	alive := func() { s.lastAck.Store(time.Now().UnixNano()) }
	err = chunks.Send(orBackground(ctx), s.m.nc, s.subject, data, 2*s.m.leaseOf(s), alive, func(dst []byte, c *wire.Chunk) []byte {
		c.Master, c.ID = s.m.id, id
		return wire.AppendCallChunk(dst, c)
	})
	var re *bus.RemoteError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return re // the worker refused the transfer, and says why
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, chunks.ErrAckTimeout):
		return fmt.Errorf("%w: worker %s stopped taking the chunks of %s (%d bytes): %v", bus.ErrWorkerLost, s.id, fn, len(data), err)
	}
	return fmt.Errorf("worker %s: %s: send in chunks: %w", s.id, fn, err)
}

// replyChunk takes one chunk of a reply larger than the server's max
// payload; with the last, the joined reply is handled as if it had come
// whole. It answers the chunks sent as requests: empty to go on, or the
// error that ends the transfer (and fails the call).
func (s *slave) replyChunk(msg *nats.Msg) {
	var c wire.Chunk
	err := wire.DecodeReplyChunk(msg.Data, &c)
	var joined []byte
	if err == nil {
		s.lastAck.Store(time.Now().UnixNano()) // a sign of life as good as a heartbeat's answer
		s.mu.Lock()
		if c.Index == 0 && s.joining[c.ID] == nil && s.pending.peek(c.ID) == nil {
			// Nobody waits for it (cancelled, or failed by a reconnect):
			// joined, it would be dropped; cut, kept for ever.
			err = fmt.Errorf("the reply to call %d is refused: the call is no longer pending (cancelled, or failed)", c.ID)
		} else {
			joined, err = chunks.Join(&s.joining, c.ID, &c, uint64(s.m.maxValue), false)
		}
		s.mu.Unlock()
	}
	if err != nil {
		err = fmt.Errorf("worker %s: %w", s.id, err)
		if c.ID != 0 {
			s.mu.Lock()
			p := s.takeLocked(c.ID)
			s.mu.Unlock()
			if p != nil {
				p.resolve(nil, nil, err)
			}
		}
		if msg.Reply != "" {
			msg.Respond(wire.AppendErrorReply(nil, c.ID, wire.NewRemoteError(s.m.id, "", err)))
		}
		return
	}
	if joined != nil {
		s.handleJoined(joined)
	}
	if msg.Reply != "" {
		msg.Respond(nil)
	}
}

// handleJoined handles a reply joined from chunks: its task gives the
// buffer back to the chunks' buffers once it has decoded the result.
func (s *slave) handleJoined(data []byte) error {
	id, _, _, _ := wire.DecodeReply(data)
	s.mu.Lock()
	p := s.pending.peek(id)
	s.mu.Unlock()
	if p != nil {
		p.giveBack(data)
	}
	return s.handleReply(data)
}
