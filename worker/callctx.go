package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// callCtx is the context a call's function receives. It ends when the
// caller cancels the call, when the caller's deadline passes, or when the
// worker aborts. It lives inside the call record, which spares an
// allocation and a cancelCtx per call; it implements the AfterFunc method
// that package context looks for, so that contexts derived from it cost no
// goroutine.
type callCtx struct {
	mu       sync.Mutex
	done     chan struct{} // made on the first Done
	err      error
	deadline time.Time
	timer    *time.Timer
	funcs    map[*afterFunc]struct{}
}

type afterFunc struct {
	f     func()
	state atomic.Int32 // 0 waiting, 1 started, 2 stopped
}

var _ context.Context = (*callCtx)(nil)

// setTimeout makes the context end d from now; call it before the context
// is shared.
func (c *callCtx) setTimeout(d time.Duration) {
	c.deadline = time.Now().Add(d)
	c.timer = time.AfterFunc(d, func() { c.cancel(context.DeadlineExceeded) })
}

func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, !c.deadline.IsZero() }

func (c *callCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *callCtx) Value(any) any { return nil }

func (c *callCtx) String() string { return "processional call context" }

// AfterFunc runs f in its own goroutine once the context ends, unless
// stop is called first; see context.AfterFunc.
func (c *callCtx) AfterFunc(f func()) (stop func() bool) {
	a := &afterFunc{f: f}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		a.state.Store(1)
		go f()
		return func() bool { return false }
	}
	if c.funcs == nil {
		c.funcs = make(map[*afterFunc]struct{})
	}
	c.funcs[a] = struct{}{}
	c.mu.Unlock()
	return func() bool {
		stopped := a.state.CompareAndSwap(0, 2)
		if stopped {
			c.mu.Lock()
			delete(c.funcs, a)
			c.mu.Unlock()
		}
		return stopped
	}
}

// cancel ends the context with err; only the first call counts.
func (c *callCtx) cancel(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	funcs := c.funcs
	c.funcs = nil
	timer := c.timer
	c.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	for a := range funcs {
		if a.state.CompareAndSwap(0, 1) {
			go a.f()
		}
	}
}
