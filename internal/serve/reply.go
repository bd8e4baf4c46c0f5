package serve

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/lane"
	"github.com/processional/processional/internal/wire"
)

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (w *Worker) publishReply(reply string, id uint64, function string, res any, cl *call) {
	buf := chunks.GetBuffer()
	bp := &buf
	var cctx any
	if cl != nil && cl.pid != 0 {
		cctx = cl // the caller shares our /dev/shm: buffers go by reference, big values in transient segments
	}
	out, err := wire.AppendReplyWith((*bp)[:0], id, res, cctx)
	if err != nil {
		if wire.IsOp(function) {
			err = fmt.Errorf("result of %s: %w; ask for it as a reference (CallRef, FieldRef, ItemRef), which keeps it on the worker", function, err)
		} else {
			err = fmt.Errorf("result of %s: %w; return a type that can travel, or keep the value on the worker (master.Wrap)", function, err)
		}
		out = wire.AppendErrorReply((*bp)[:0], id, wire.NewRemoteError(w.id, function, err))
	}
	if reply == laneReply {
		// One frame, however big: the lane has no max payload.
		if uint64(len(out)) > w.maxValue {
			out = w.tooBig(out, id, function)
		}
		err = w.lane.Write(lane.Reply, out)
	} else if len(out) > int(w.nc.MaxPayload()) {
		out = w.sendChunked(reply, id, function, out)
	} else if err = w.nc.Publish(reply, out); errors.Is(err, nats.ErrMaxPayload) {
		// Say so rather than leave the caller waiting for a reply that
		// the server refused.
		err = fmt.Errorf("%w: the result of %s is %d bytes, over the server's max payload of %d", bus.ErrTooBig, function, len(out), w.nc.MaxPayload())
		out = wire.AppendErrorReply(out[:0], id, wire.NewRemoteError(w.id, function, err))
		w.nc.Publish(reply, out)
	}
	// Any other failure is a closed connection: the master sees the
	// worker gone and fails the call. The segments the reply refers to
	// need not wait for the master to die.
	if err != nil && cctx != nil {
		codec.CancelTransits(out)
	}
	if cctx != nil {
		for _, b := range cl.sending {
			b.Close() // sent: the transit holds it for the master
		}
		cl.sending = nil
	}
	chunks.PutBuffer(out)
}

func (w *Worker) replyError(reply string, id uint64, function string, err error) {
	if reply == "" {
		return
	}
	bp := buffers.Get().(*[]byte)
	out := wire.AppendErrorReply((*bp)[:0], id, wire.NewRemoteError(w.id, function, err))
	w.publish(reply, out)
	*bp = out
	buffers.Put(bp)
}

// laneReply stands for the reply subject of a call that came on the
// lane: its answer goes back on the lane. No NATS subject holds a space.
const laneReply = "the lane"

// publish sends a reply envelope to reply: a NATS subject, or the lane.
func (w *Worker) publish(reply string, data []byte) error {
	if reply == laneReply {
		return w.lane.Write(lane.Reply, data)
	}
	return w.nc.Publish(reply, data)
}

// tooBig overwrites out, a reply past the worker's limit, with the error
// that says so.
func (w *Worker) tooBig(out []byte, id uint64, function string) []byte {
	err := fmt.Errorf("%w: the result of %s is %d bytes, over the limit of %d (worker.WithMaxValue)", bus.ErrTooBig, function, len(out), w.maxValue)
	return wire.AppendErrorReply(out[:0], id, wire.NewRemoteError(w.id, function, err))
}
