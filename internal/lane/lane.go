// Package lane is the local lane: the connected socket a master shares
// with a worker it spawned. The spawning master's calls, cancels, closes
// and heartbeats to that worker travel on it, and the worker's replies
// and acknowledgements come back on it, in the same envelopes as on NATS
// but one hop from process to process instead of four. Its EOF is each
// side's news of the other's death.
//
// A frame is a 4-byte big-endian length, a kind byte, then the envelope:
//
//	| length (4) | kind (1) | envelope (length bytes) |
//
// A Conn is safe for one reader and many writers. Writers never wait to
// fill a write: the first writes at once, and the frames queued while it
// writes go together in the next write.
package lane

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/internal/registry"
	"github.com/processional/processional/internal/sockets"
)

// Kind says what a frame carries.
type Kind byte

// The kinds of frame. The first three go from master to worker, the
// last three back.
const (
	Call  Kind = 'c' // an envelope for the worker's call endpoint, answered with a Reply
	Send  Kind = 's' // the same, unanswered: cancels, closes, releases
	Beat  Kind = 'b' // a heartbeat, answered with an Ack
	Reply Kind = 'r' // a call's reply envelope
	Ack   Kind = 'a' // a heartbeat's acknowledgement
	// Bye says, with no body, that the worker read the master's side of
	// the lane to its end, after the master let go of it (Conn.LetGo):
	// the master's calls go by NATS from then on, and arrive after the
	// ones it sent on the lane.
	Bye Kind = 'z'
)

func (k Kind) String() string {
	switch k {
	case Call:
		return "call"
	case Send:
		return "send"
	case Beat:
		return "beat"
	case Reply:
		return "reply"
	case Ack:
		return "ack"
	case Bye:
		return "bye"
	}
	return fmt.Sprintf("kind %#x", byte(k))
}

// header is the size of a frame's length and kind.
const header = 5

// Overhead is what a frame may hold past the largest value it carries:
// the envelope around the value.
const Overhead = 64 << 10

// bigFrame is the body size from which Read takes its buffer from the
// chunks' buffers (Frame.Pooled), and reports progress to Alive.
const bigFrame = 64 << 10

// piece is how much of a big frame's body Read reads between two calls
// of Alive.
const piece = 1 << 20

// ErrLetGo is the error of a write after [Conn.LetGo]: the frame must go
// by NATS.
var ErrLetGo = errors.New("lane: let go: send by NATS")

// ErrClosed is the error of a write after [Conn.Close], or after the
// socket failed.
var ErrClosed = errors.New("lane: closed")

// Frame is one frame read.
type Frame struct {
	Kind Kind
	Body []byte
	// Pooled says that Body came from the chunks' buffers: give it back
	// with chunks.PutBuffer once nothing refers to it.
	Pooled bool
}

// HalfCloser is a connection whose write side closes apart: a
// *net.UnixConn.
type HalfCloser interface {
	io.ReadWriteCloser
	CloseWrite() error
	SetReadDeadline(time.Time) error
}

// Conn is one end of a lane.
type Conn struct {
	c     HalfCloser
	r     *bufio.Reader
	max   int             // the largest body Read takes
	alive func()          // called as a big frame's body arrives, piece by piece
	raw   syscall.RawConn // c's descriptor, for writes that do not wait; nil: c.Write
	once  sync.Once       // sets raw, at the first write: a dialled lane has none before

	mu      sync.Mutex
	out     []byte    // frames queued while a write is in progress
	spare   []byte    // the buffer the last write took, to queue the next ones in
	writing bool      // a writer is in Write's loop: queue and leave
	idle    sync.Cond // signalled when writing ends, for LetGo
	err     error     // ErrLetGo, ErrClosed or the write's error: writes fail with it
	hdr     [header]byte
}

// New wraps c. Read refuses a frame whose body is larger than max, and
// calls alive, if not nil, as each piece of a large frame arrives: a
// peer busy sending one is alive, whatever its heartbeats say.
func New(c HalfCloser, max int, alive func()) *Conn {
	l := &Conn{c: c, r: bufio.NewReaderSize(c, bigFrame+header), max: max, alive: alive}
	l.idle.L = &l.mu
	return l
}

// rawConn returns c's descriptor, or nil when it has none.
func (c *Conn) rawConn() syscall.RawConn {
	c.once.Do(func() {
		if sc, ok := c.c.(syscall.Conn); ok {
			c.raw, _ = sc.SyscallConn()
		}
	})
	return c.raw
}

// queueCap bounds the queue buffer kept between writes.
const queueCap = 256 << 10

// Write sends one frame of kind k; body may be reused when it returns.
// It never waits for the peer to read, but for a big frame (a body of 64
// KiB or more), which it writes to its end from the caller's goroutine.
// When no write is in progress it writes at once, from the caller's
// goroutine, what the socket takes without waiting; otherwise it queues
// the frame, and the writer in progress sends it with the others queued
// meanwhile, in one write. What the socket does not take at once goes by
// a flusher goroutine. A frame queued behind a write that fails is lost
// with the lane, whose reader then sees it end.
func (c *Conn) Write(k Kind, body []byte) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	if len(body) >= bigFrame {
		for c.writing { // the frames before it go first
			c.idle.Wait()
		}
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return err
		}
		// Big: its own write, not a copy into the queue.
		c.writing = true
		binary.BigEndian.PutUint32(c.hdr[:4], uint32(len(body)))
		c.hdr[4] = byte(k)
		c.mu.Unlock()
		bufs := net.Buffers{c.hdr[:], body}
		_, err := bufs.WriteTo(c.c)
		c.mu.Lock()
		if err != nil {
			return c.failLocked(err)
		}
	} else {
		c.out = appendFrame(c.out, k, body)
		if c.writing {
			c.mu.Unlock()
			return nil
		}
		c.writing = true
	}
	return c.flushLocked(false)
}

// Queue sends one frame of kind k as Write does, but never writes from
// the caller's goroutine (but a big frame, which Write writes): it queues
// the frame, and a flusher goroutine writes it with the frames queued
// meanwhile, in one write. For a producer of many frames in a row (a
// stream's items), whose frames then go many to a write rather than one
// to a system call each.
func (c *Conn) Queue(k Kind, body []byte) error {
	if len(body) >= bigFrame {
		return c.Write(k, body)
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.out = appendFrame(c.out, k, body)
	if c.writing {
		c.mu.Unlock()
		return nil
	}
	c.writing = true
	c.mu.Unlock()
	go c.flusher()
	return nil
}

// flushLocked writes the queue, c.mu held and c.writing set, and
// unlocks c.mu. With wait false it writes what the socket takes at once,
// and leaves the rest to a flusher goroutine, which then owns c.writing.
func (c *Conn) flushLocked(wait bool) error {
	for len(c.out) > 0 {
		out := c.out
		c.out = c.spare[:0]
		c.mu.Unlock()
		var n int
		var err error
		if wait {
			n, err = c.c.Write(out)
		} else {
			n, err = c.tryWrite(out)
		}
		c.mu.Lock()
		if err != nil {
			return c.failLocked(err)
		}
		if n < len(out) {
			// The socket is full: the rest goes first, by a flusher.
			rest := out[n:]
			c.out = append(rest[:len(rest):len(rest)], c.out...) // a new array: c.spare is free again
			c.mu.Unlock()
			go c.flusher()
			return nil
		}
		// out is free again; c.spare is c.out's array now.
		c.spare = nil
		if cap(out) <= queueCap {
			c.spare = out[:0]
		}
	}
	c.writing = false
	c.idle.Broadcast()
	c.mu.Unlock()
	return nil
}

// flusher writes the queue once the socket takes it.
func (c *Conn) flusher() {
	c.mu.Lock()
	c.flushLocked(true)
}

// failLocked records a failed write, c.mu held, unlocks c.mu and closes
// the socket: the reader sees the lane end.
func (c *Conn) failLocked(err error) error {
	c.out = nil
	c.writing = false
	c.idle.Broadcast()
	if c.err == nil {
		c.err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	err = c.err
	c.mu.Unlock()
	c.c.Close()
	return err
}

func appendFrame(dst []byte, k Kind, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	dst = append(dst, byte(k))
	return append(dst, body...)
}

// Read returns the next frame; it is for one goroutine at a time. At the
// end of the lane it returns io.EOF; a malformed frame (a kind it does
// not know, a body past the limit, a frame cut short) returns an error
// wrapping [registry.ErrBadPayload] or [registry.ErrTooBig] that says
// what was wrong, and the lane is then of no more use.
//
// A read deadline ([Conn.Kick]) that passes before a frame has begun
// returns an error wrapping os.ErrDeadlineExceeded and consumes nothing:
// the next Read, by this goroutine or another, reads that frame. One that
// passes while a large frame's body arrives is cleared, and the frame
// read to its end.
func (c *Conn) Read() (Frame, error) {
	h, err := c.r.Peek(header)
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			c.mu.Lock()
			werr := c.err
			c.mu.Unlock()
			if werr != nil && werr != ErrClosed && werr != ErrLetGo {
				return Frame{}, werr // closed by a write that failed: the peer is gone
			}
		}
		if len(h) > 0 && errors.Is(err, io.EOF) {
			return Frame{}, fmt.Errorf("%w: a lane frame cut short in its header", registry.ErrBadPayload)
		}
		return Frame{}, err
	}
	n := int(binary.BigEndian.Uint32(h[:4]))
	k := Kind(h[4])
	switch k {
	case Call, Send, Beat, Reply, Ack, Bye:
	default:
		return Frame{}, fmt.Errorf("%w: a lane frame of unknown kind %#x (%d bytes): garbage on the lane", registry.ErrBadPayload, h[4], n)
	}
	if n > c.max {
		return Frame{}, fmt.Errorf("%w: a %s frame of %d bytes on the lane, over its limit of %d", registry.ErrTooBig, k, n, c.max)
	}
	f := Frame{Kind: k}
	if n < bigFrame {
		whole, err := c.r.Peek(header + n)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return Frame{}, err // nothing consumed
			}
			return Frame{}, cutShort(k, n, err)
		}
		f.Body = make([]byte, n)
		copy(f.Body, whole[header:])
		c.r.Discard(header + n)
		return f, nil
	}
	c.r.Discard(header)
	b := chunks.GetBufferCap(n)
	if cap(b) < n {
		chunks.PutBuffer(b)
		b = make([]byte, 0, n)
	}
	f.Body, f.Pooled = b[:n], true
	for off := 0; off < n; {
		m, err := c.r.Read(f.Body[off:min(off+piece, n)])
		off += m
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.c.SetReadDeadline(time.Time{}) // begun: read to its end
			continue
		}
		if err != nil {
			chunks.PutBuffer(b)
			return Frame{}, cutShort(k, n, err)
		}
		if c.alive != nil {
			c.alive()
		}
	}
	return f, nil
}

// Ready reports whether a whole frame is buffered: Read would return it
// without waiting.
func (c *Conn) Ready() bool {
	if c.r.Buffered() < header {
		return false
	}
	h, _ := c.r.Peek(header)
	return c.r.Buffered() >= header+int(binary.BigEndian.Uint32(h[:4]))
}

// Kick makes the Read in progress, if it waits for a frame to begin,
// return an error wrapping os.ErrDeadlineExceeded at once; and so the
// next Read, unless [Conn.Unkick] comes first.
func (c *Conn) Kick() { c.c.SetReadDeadline(time.Now()) }

// Unkick clears a Kick.
func (c *Conn) Unkick() { c.c.SetReadDeadline(time.Time{}) }

// Kicked reports whether err, from Read, is a Kick's.
func Kicked(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func cutShort(k Kind, n int, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: a %s frame of %d bytes cut short by the lane's end", registry.ErrBadPayload, k, n)
	}
	return err
}

// Live reports whether writes go on the lane: it was neither let go of
// nor closed, and no write failed.
func (c *Conn) Live() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil
}

// Ended reports whether err, from Read, is the lane's end rather than
// garbage on it: EOF, or the peer gone with data unread (a reset).
func Ended(err error) bool {
	return errors.Is(err, io.EOF) || sockets.Reset(err)
}

// LetGo ends the writes on the lane cleanly: the peer reads the frames
// written so far, then EOF. Later writes fail with [ErrLetGo]; reads go
// on until the peer closes its side.
func (c *Conn) LetGo() error {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil
	}
	c.err = ErrLetGo
	for c.writing { // the writer in progress sends what it queued first
		c.idle.Wait()
	}
	c.mu.Unlock()
	return c.c.CloseWrite()
}

// Flush waits, d at most, until the frames queued so far are written (or
// the lane failed): what a closing end owes its peer. A peer that does
// not read is not waited for past d; Close then fails the write.
func (c *Conn) Flush(d time.Duration) {
	done := make(chan struct{})
	go func() { // ends when the writes end, at the latest when Close fails them
		c.mu.Lock()
		for c.writing {
			c.idle.Wait()
		}
		c.mu.Unlock()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// Close closes the lane both ways: the reader returns, the peer sees EOF.
// It returns once no write is in progress: a flusher goroutine, its
// write failed by the closed socket, has stopped.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.err == nil || c.err == ErrLetGo {
		c.err = ErrClosed
	}
	c.mu.Unlock()
	err := c.c.Close()
	c.mu.Lock()
	for c.writing {
		c.idle.Wait()
	}
	c.mu.Unlock()
	return err
}
