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
	w.sendResult(reply, id, function, res, cl, resultSent)
}

// How sendResult sends: a call's result, or a stream's item, written at
// once or queued for the lane's flusher (lane.Conn.Queue).
type sendKind int

const (
	resultSent sendKind = iota
	itemSent
	itemQueuedSent
)

// itemQueued is the sendKind of an item: queued for the lane's flusher,
// or written at once.
func itemQueued(queued bool) sendKind {
	if queued {
		return itemQueuedSent
	}
	return itemSent
}

// sendResult sends a call's result, or a stream's item, and returns its
// size. A result that cannot be encoded or sent is answered with the
// error that says why; an item's is returned instead.
func (w *Worker) sendResult(reply string, id uint64, function string, res any, cl *call, how sendKind) (int, error) {
	item := how != resultSent
	// A queued call's result is encoded in its queue's buffer, which
	// only the queue's drainer uses: many small results in a row then
	// cost no pool's round trip.
	scratch := cl != nil && cl.q != nil && !item
	var buf []byte
	if scratch {
		buf = cl.q.scratch
	} else {
		buf = chunks.GetBuffer()
	}
	var cctx any
	if cl != nil && cl.pid != 0 {
		cctx = cl // the caller shares our /dev/shm: buffers go by reference, big values in transient segments
	}
	var out []byte
	var err error
	switch {
	case scratch && cl.encoded:
		out = buf // the whole reply, encoded by invoke
	case item:
		out, err = wire.AppendItemWith(buf[:0], id, res, cctx)
	default:
		out, err = wire.AppendReplyWith(buf[:0], id, res, cctx)
	}
	if err != nil {
		switch {
		case item:
			err = fmt.Errorf("item of %s: %w; yield a type that can travel", function, err)
		case wire.IsOp(function):
			err = fmt.Errorf("result of %s: %w; ask for it as a reference (CallRef, FieldRef, ItemRef), which keeps it on the worker", function, err)
		default:
			err = fmt.Errorf("result of %s: %w; return a type that can travel, or keep the value on the worker (master.Wrap)", function, err)
		}
		if item {
			if cctx != nil {
				codec.CancelTransits(out)
			}
			w.closeSending(cl)
			chunks.PutBuffer(out)
			return 0, err
		}
		out = wire.AppendErrorReply(buf[:0], id, wire.NewRemoteError(w.id, function, err))
	}
	size := len(out)
	var failed error // an item's: the stream ends with it
	if reply == laneReply {
		// One frame, however big: the lane has no max payload.
		if uint64(len(out)) > w.maxValue {
			out = w.tooBig(out, id, function)
			failed = errItemTooBig
		}
		if how == itemQueuedSent || (how == resultSent && cl != nil && cl.more) {
			// Calls wait behind it: the lane's flusher writes it with
			// their replies, many to a system call.
			err = w.lane.Queue(lane.Reply, out)
		} else {
			err = w.lane.Write(lane.Reply, out)
		}
	} else {
		if uint64(len(out)) > w.maxValue && len(out) > w.maxPayload() {
			failed = errItemTooBig // its chunks are an error reply that says so
		}
		out, err = w.sendNATS(cl, reply, id, function, out, cl != nil && cl.q != nil && !item && batchable(cl, out))
	}
	// Any other failure is a closed connection: the master sees the
	// worker gone and fails the call. The segments the reply refers to
	// need not wait for the master to die.
	if err != nil && cctx != nil {
		codec.CancelTransits(out)
	}
	w.closeSending(cl)
	if scratch && cap(out) <= maxScratch {
		cl.q.scratch = out[:0]
	} else {
		if scratch {
			cl.q.scratch = nil
		}
		chunks.PutBuffer(out)
	}
	if failed == nil {
		failed = err
	}
	return size, failed
}

// maxPayload is the server's max payload (chunks.MaxPayload).
func (w *Worker) maxPayload() int { return w.maxPay.Of(w.nc) }

// maxScratch is the largest buffer a queue keeps for its results
// (sendResult): a bigger one goes back to the chunks' buffers.
const maxScratch = 64 << 10

// batchable reports whether out, the reply to cl, may go in a batch:
// a small one, which refers to no shared memory (should its message
// fail, its segments must be dropped at once).
func batchable(cl *call, out []byte) bool {
	return len(out) <= wire.MaxBatched && len(cl.sending()) == 0 && !cl.shmSent
}

// errItemTooBig ends a stream whose item was too big: the master was
// told so in an error reply.
var errItemTooBig = fmt.Errorf("%w: an item over the largest value", bus.ErrTooBig)

// closeSending closes the transient segments made for cl's reply, once
// it is sent: the transits hold them for the master.
func (w *Worker) closeSending(cl *call) {
	if cl == nil || cl.pid == 0 {
		return
	}
	for _, b := range cl.sending() {
		b.Close()
	}
	if cl.x != nil {
		cl.x.sending = nil
	}
}

func (w *Worker) replyError(reply string, id uint64, function string, err error) {
	w.replyErrorTo(nil, reply, id, function, err)
}

// replyErrorTo is replyError for cl, whose reply may join the replies
// its queue has ready (post); cl may be nil.
func (w *Worker) replyErrorTo(cl *call, reply string, id uint64, function string, err error) {
	if reply == "" {
		return
	}
	bp := buffers.Get().(*[]byte)
	out := wire.AppendErrorReply((*bp)[:0], id, wire.NewRemoteError(w.id, function, err))
	// A failure to send is a closed connection or lane, or a client
	// buffer full while it reconnects: the master sees the worker gone,
	// or its epoch changed, and fails the call.
	if reply == laneReply {
		w.lane.Write(lane.Reply, out)
	} else {
		// An error as big as a big result (a long message, a deep
		// stack) goes in chunks, as one does.
		out, _ = w.sendNATS(cl, reply, id, function, out, cl != nil && cl.q != nil)
	}
	*bp = out
	buffers.Put(bp)
}

// sendNATS sends out, a reply envelope, to reply: in chunks past the
// server's max payload; else joined to the replies cl's queue has ready
// (post) when join says so, or alone. The client refusing out as over the
// max payload means the one read was an earlier server's: it is read
// again, and out goes in chunks. It returns out, which sendChunked may
// have overwritten with an error reply.
func (w *Worker) sendNATS(cl *call, reply string, id uint64, function string, out []byte, join bool) ([]byte, error) {
	if len(out) <= w.maxPayload() {
		var err error
		if join {
			err = w.post(cl, out)
		} else {
			err = w.nc.Publish(reply, out)
		}
		if !errors.Is(err, nats.ErrMaxPayload) {
			return out, err
		}
		w.maxPay.Reset()
	}
	return w.sendChunked(reply, id, function, out), nil
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
