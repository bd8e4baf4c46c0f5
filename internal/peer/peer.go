// Package peer is what a process that decodes a call knows of itself: its
// NATS connection, its id, and the objects it holds. A worker hands its
// Context to the decoding of every argument (codec.UnmarshalWith); a
// reference that arrives (master.Ref) binds itself through it, so that it
// calls the object's owner directly.
//
// It sits apart from both the worker runtime (internal/serve), which makes
// the Context, and the master package, which makes the client it lends,
// so that neither has to import the other for it.
package peer

import (
	"errors"
	"io"
	"sync"

	"github.com/nats-io/nats.go"
)

// ErrClosed is returned by Client once the Context is closed.
var ErrClosed = errors.New("peer: closed")

// Context describes the process that decodes a value.
type Context struct {
	Conn *nats.Conn // its connection
	ID   string     // its id: the worker's id, which also names it as a holder of references
	// Local returns the object of the given id held by this process, if
	// any: a reference to it needs no trip on the bus.
	Local func(id uint64) (any, bool)
	// Probe asks a reference to decode without binding: to learn what it
	// decodes to (its Go type) before it is bound for real. A probing
	// Context has no connection.
	Probe bool

	mu     sync.Mutex
	client io.Closer
	closed bool
}

// Client returns the Context's client, made by mk the first time: the
// master through which the references this process receives call their
// owners. It lives until Close.
func (c *Context) Client(mk func() (io.Closer, error)) (io.Closer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.client == nil {
		cl, err := mk()
		if err != nil {
			return nil, err
		}
		c.client = cl
	}
	return c.client, nil
}

// Close closes the client, if one was made, and refuses to make another.
func (c *Context) Close() error {
	c.mu.Lock()
	cl := c.client
	c.client, c.closed = nil, true
	c.mu.Unlock()
	if cl != nil {
		return cl.Close()
	}
	return nil
}
