// Package chunks sends a message larger than the NATS server's max payload
// as a sequence of chunk envelopes, with flow control, and joins such a
// sequence on the receiving side. Calls (master to worker) and replies
// (worker to master) both use it.
package chunks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// DefaultLimit is the largest value a call or a reply may carry, chunked,
// unless configured otherwise: 1 GiB.
const DefaultLimit = 1 << 30

// Window is how many chunks a sender sends before it waits for the
// receiver's acknowledgement: a slow receiver holds the sender back, so
// that the server never has more than Window max payloads of one transfer
// queued for it (the server drops a slow consumer's connection past its
// max pending, 64 MiB by default).
const Window = 8

// overhead is what a chunk's envelope adds to its data, at most.
const overhead = 512

// Size is the data a chunk carries on a connection.
func Size(nc *nats.Conn) int { return int(nc.MaxPayload()) - overhead }

// MaxPayload holds a connection's max payload, read from it once and
// again after Reset (at a reconnect: the new server's may differ).
// nats.go's MaxPayload takes the connection's lock, which every call and
// reply would contend for with its reader and its flusher. A server that
// takes less than its predecessor refuses a message over its own max
// payload all the same, and the sender says so. The zero MaxPayload is
// ready.
type MaxPayload struct{ n atomic.Int64 }

// Of is nc's max payload.
func (m *MaxPayload) Of(nc *nats.Conn) int {
	if n := m.n.Load(); n > 0 {
		return int(n)
	}
	n := nc.MaxPayload() // 0 while never connected: read again next time
	m.n.Store(n)
	return int(n)
}

// Reset has Of read the max payload again.
func (m *MaxPayload) Reset() { m.n.Store(0) }

// Hold has Of return n until Reset, as a reading from an earlier server
// would (for tests).
func (m *MaxPayload) Hold(n int64) { m.n.Store(n) }

// ErrAckTimeout: the receiver did not acknowledge a window of chunks in
// time.
var ErrAckTimeout = errors.New("chunks: no acknowledgement")

// Send splits msg into chunks of at most Size(nc) bytes, builds each
// chunk's envelope with envelope, and publishes them on subject, every
// Window-th and the last as a request whose answer it waits for (at most
// timeout each), calling alive, if not nil, on each answer: a receiver
// busy taking a large transfer may answer its heartbeats late, and this is
// a sign of life as good. It gives up when ctx ends.
func Send(ctx context.Context, nc *nats.Conn, subject string, msg []byte, timeout time.Duration, alive func(), envelope func(dst []byte, c *wire.Chunk) []byte) error {
	size := Size(nc)
	count := (len(msg) + size - 1) / size
	c := wire.Chunk{Count: uint32(count), Total: uint64(len(msg))}
	buf := GetBuffer()
	defer func() { PutBuffer(buf) }()
	for i := range count {
		c.Index = uint32(i)
		c.Data = msg[i*size : min((i+1)*size, len(msg))]
		buf = envelope(buf[:0], &c)
		if (i+1)%Window != 0 && i != count-1 {
			if err := nc.Publish(subject, buf); err != nil {
				return err
			}
			continue
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		reply, err := nc.RequestWithContext(actx, subject, buf)
		cancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			return fmt.Errorf("%w for chunk %d of %d within %s", ErrAckTimeout, i, count, timeout)
		case err != nil:
			return err
		case alive != nil && len(reply.Data) == 0:
			alive()
		case len(reply.Data) > 0:
			// The receiver refused the transfer; it says why.
			_, _, remote, derr := wire.DecodeReply(reply.Data)
			if remote != nil {
				return remote
			}
			if derr != nil {
				return derr
			}
		}
	}
	return nil
}

// lostOnTheWay says why a chunk is missing. A sender of chunks sends them
// all, in order, on one subject: one missing was lost between, as a
// message is when a connection drops (NATS delivers at most once). Such
// an error wraps bus.ErrWorkerLost, as the loss of any message in flight
// does, not bus.ErrBadPayload: the value was good, the road lost it.
const lostOnTheWay = "lost on the way (NATS delivers at most once; a connection dropped)"

// Joiner joins the chunks of one message.
type Joiner struct {
	buf   []byte
	next  uint32
	count uint32
	total uint64
	err   error // the join failed: Join answers the sender's next chunk with it
}

// Join adds chunk c to the message key of joins, a table of the joins in
// progress that the caller owns and guards (nil until the first join):
// chunk 0 starts a join of at most limit bytes, and the last one returns
// the message whole, to give back with PutBuffer once nothing refers to
// it. An error ends the join. When the sender does not hear it now (c was
// not sent as a request, nor is it the last), keep holds the error in the
// table, with no buffer, to answer the sender's next chunk of key with.
func Join[K comparable](joins *map[K]*Joiner, key K, c *wire.Chunk, limit uint64, keep bool) (msg []byte, err error) {
	j := (*joins)[key]
	switch {
	case j != nil && j.err != nil:
		err = j.err
	case j == nil && c.Index == 0:
		if j, err = Start(c, limit); err == nil {
			if *joins == nil {
				*joins = make(map[K]*Joiner)
			}
			(*joins)[key] = j
		}
	case j == nil:
		err = fmt.Errorf("%w: chunk %d of call %d: its first chunks are missing, %s", bus.ErrWorkerLost, c.Index, c.ID, lostOnTheWay)
	}
	if err == nil {
		var done bool
		if done, err = j.Add(c); done {
			delete(*joins, key)
			return j.Bytes(), nil
		}
	}
	if err == nil {
		return nil, nil
	}
	if keep {
		if *joins == nil {
			*joins = make(map[K]*Joiner)
		}
		(*joins)[key] = &Joiner{err: err}
	} else {
		delete(*joins, key)
	}
	return nil, err
}

// Start checks the first chunk of a message against limit, and returns
// the joiner for the rest.
func Start(c *wire.Chunk, limit uint64) (*Joiner, error) {
	if c.Index != 0 {
		return nil, fmt.Errorf("%w: chunk %d of call %d arrived first: chunk 0 missing", bus.ErrBadPayload, c.Index, c.ID)
	}
	if c.Total > limit {
		return nil, fmt.Errorf("%w: a value of %d bytes, over the limit of %d", bus.ErrTooBig, c.Total, limit)
	}
	if uint64(c.Count) > c.Total || c.Count < 2 {
		return nil, fmt.Errorf("%w: %d chunks for %d bytes", bus.ErrBadPayload, c.Count, c.Total)
	}
	buf := GetBuffer()
	if uint64(cap(buf)) < c.Total {
		PutBuffer(buf)
		buf = make([]byte, 0, c.Total)
	}
	return &Joiner{buf: buf, count: c.Count, total: c.Total}, nil
}

// Add appends chunk c; done reports that the message is whole, in Bytes.
func (j *Joiner) Add(c *wire.Chunk) (done bool, err error) {
	switch {
	case c.Count != j.count || c.Total != j.total:
		return false, fmt.Errorf("%w: chunk %d of call %d says %d chunks of %d bytes, the first said %d of %d", bus.ErrBadPayload, c.Index, c.ID, c.Count, c.Total, j.count, j.total)
	case c.Index < j.next:
		return false, fmt.Errorf("%w: chunk %d of call %d arrived twice", bus.ErrBadPayload, c.Index, c.ID)
	case c.Index > j.next:
		return false, fmt.Errorf("%w: chunk %d of call %d arrived after chunk %d: chunk %d missing, %s", bus.ErrWorkerLost, c.Index, c.ID, j.next-1, j.next, lostOnTheWay)
	case uint64(len(j.buf))+uint64(len(c.Data)) > j.total:
		return false, fmt.Errorf("%w: chunk %d of call %d overflows the %d bytes announced", bus.ErrBadPayload, c.Index, c.ID, j.total)
	}
	j.buf = append(j.buf, c.Data...)
	j.next++
	if j.next < j.count {
		return false, nil
	}
	if uint64(len(j.buf)) != j.total {
		return false, fmt.Errorf("%w: call %d: %d bytes announced, %d arrived", bus.ErrBadPayload, c.ID, j.total, len(j.buf))
	}
	return true, nil
}

// Bytes is the joined message. Give it back with PutBuffer once nothing
// refers to it.
func (j *Joiner) Bytes() []byte { return j.buf }

// Buffers for encoding messages. A sync.Pool is emptied by every garbage
// collection, which a stream of 10 MB calls runs at every call, each call
// then growing its buffer from nothing, doubling it a dozen times: a few
// large buffers are kept aside from the pool.
//
// A buffer is kept in the pool behind a pointer, and the pointers go to
// a pool of their own while their buffer is out: putting a slice back
// would otherwise allocate a pointer to it, on every message.
var (
	small   = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
	holders sync.Pool // *[]byte whose buffer is out
	large   = make(chan []byte, 4)
)

// largeCap is the capacity from which a buffer is kept aside.
const largeCap = 1 << 20

// GetBuffer returns an empty buffer for encoding a message: a large one
// kept aside if there is one, else one from a pool.
func GetBuffer() []byte {
	select {
	case b := <-large:
		return b[:0]
	default:
		p := small.Get().(*[]byte)
		b := *p
		*p = nil
		holders.Put(p)
		return b[:0]
	}
}

// GetBufferCap is GetBuffer for a message of n bytes: a buffer kept
// aside that holds n, if one does; else one from the pool, to be grown.
func GetBufferCap(n int) []byte {
	if n < largeCap {
		return GetBuffer()
	}
	for range cap(large) {
		select {
		case b := <-large:
			if cap(b) >= n {
				return b[:0]
			}
			select {
			case large <- b: // too small for this one: back for another
			default:
			}
		default:
			return (*small.Get().(*[]byte))[:0]
		}
	}
	return (*small.Get().(*[]byte))[:0]
}

// PutBuffer gives back a buffer GetBuffer returned (grown or not) once
// nothing refers to its bytes any more.
func PutBuffer(b []byte) {
	if cap(b) >= largeCap {
		select {
		case large <- b:
		default: // enough kept aside: let it go
		}
		return
	}
	p, _ := holders.Get().(*[]byte)
	if p == nil {
		p = new([]byte)
	}
	*p = b
	small.Put(p)
}
