package serve

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

// chunk takes one chunk of a call larger than the server's max payload;
// with the last, the joined call is handled as if it had come whole. It
// runs on the call subscription's goroutine, so the joined call keeps its
// place among the master's calls.
func (w *Worker) chunk(req *nats.Msg) {
	var c wire.Chunk
	if err := wire.DecodeCallChunk(req.Data, &c); err != nil {
		w.ackChunk(req, 0, err)
		return
	}
	w.mu.Lock()
	if l := w.leases[c.Master]; l != nil {
		l.last = time.Now() // a master sending chunks is alive, whatever delays its heartbeats
	}
	// An error the sender does not hear now, it hears at its next request.
	keep := req.Reply == "" && c.Index != c.Count-1
	msg, err := chunks.Join(&w.joining, callKey{c.Master, c.ID}, &c, w.maxValue, keep)
	w.mu.Unlock()
	if err != nil {
		w.ackChunk(req, c.ID, err)
		return
	}
	if msg != nil {
		w.handleJoined(&w.natsIn, msg, wire.ReplySubject(c.Master, w.id))
	}
	w.ackChunk(req, c.ID, nil)
}

// ackChunk answers a chunk sent as a request: empty to go on, or the
// error that ends the transfer.
func (w *Worker) ackChunk(req *nats.Msg, id uint64, err error) {
	if req.Reply == "" {
		return
	}
	if err != nil {
		req.Respond(wire.AppendErrorReply(nil, id, wire.NewRemoteError(w.id, "", err)))
		return
	}
	req.Respond(nil)
}

// chunkAckTimeout bounds the wait for a master's acknowledgement of a
// window of a result's chunks: a master that does not answer is gone.
const chunkAckTimeout = 10 * time.Second

// sendChunked sends the reply out, larger than the server's max payload,
// in chunks; or, past the worker's limit, an error saying so. It returns
// the buffer to recycle.
func (w *Worker) sendChunked(reply string, id uint64, function string, out []byte) []byte {
	if uint64(len(out)) > w.maxValue {
		out = w.tooBig(out, id, function)
		w.nc.Publish(reply, out)
		return out
	}
	err := chunks.Send(context.Background(), w.nc, reply, out, chunkAckTimeout, nil, func(dst []byte, c *wire.Chunk) []byte {
		c.ID = id
		return wire.AppendReplyChunk(dst, c)
	})
	var re *bus.RemoteError
	if errors.As(err, &re) || errors.Is(err, nats.ErrConnectionClosed) {
		return out // the master refused it, or we are gone: nothing to tell
	}
	if err != nil {
		// The master stopped acknowledging (or no longer listens): a lost
		// peer, not a size problem. Tell it, should it listen again.
		err = fmt.Errorf("%w: master stopped taking the chunks of the result of %s (%d bytes): %v", bus.ErrWorkerLost, function, len(out), err)
		w.nc.Publish(reply, wire.AppendErrorReply(out[:0], id, wire.NewRemoteError(w.id, function, err)))
	}
	return out
}
