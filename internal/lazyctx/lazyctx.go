// Package lazyctx is a cancelable context that costs nothing until it is
// watched: processional gives one to every task, and most tasks never look
// at theirs.
//
// context.WithCancel allocates a context and, under a cancelable parent,
// inserts it into the parent's set of children and removes it again: on a
// task that runs for a microsecond, that is most of the task's cost. A
// [Ctx] links itself to its parent only when someone waits on it (Done,
// AfterFunc, or a context derived from it); until then Err asks the parent.
// It is meant to be embedded in a larger record, to spare an allocation.
package lazyctx

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Ctx is a context that ends when Cancel is called, when its own timeout
// passes, or when its parent ends. Its zero value is a context with no
// parent and no deadline, ready to use; set Parent and call SetTimeout
// before sharing it. It must not be copied after first use.
type Ctx struct {
	// Parent, if not nil, is the context Ctx derives from: its deadline,
	// values and end.
	Parent context.Context
	// Progress, if not nil, is where bus.Progress reports to, under this
	// context and those derived from it: Value gives it for ProgressKey.
	Progress ProgressReporter

	mu         sync.Mutex
	done       chan struct{} // made on the first Done
	err        error
	deadline   time.Time
	timer      *time.Timer
	funcs      map[*afterFunc]struct{}
	parentStop func() bool // unlinks from the parent; nil until linked
}

type afterFunc struct {
	f     func()
	state atomic.Int32 // 0 waiting, 1 started, 2 stopped
}

var _ context.Context = (*Ctx)(nil)

// SetTimeout makes the context end d from now (or at its parent's
// deadline, if earlier). Call it before the context is shared. Its timer
// starts only once someone waits on the context (Done, AfterFunc); until
// then Err compares the time with the deadline. A timer for every call
// with a deadline cost pipelined calls a fifth of their throughput.
func (c *Ctx) SetTimeout(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = time.Now().Add(d)
}

// armLocked starts the timer of the context's own deadline, if it has
// one and the timer has not started; c.mu held.
func (c *Ctx) armLocked() {
	if c.timer != nil || c.err != nil || c.deadline.IsZero() {
		return
	}
	c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.Cancel(context.DeadlineExceeded) })
}

// Deadline returns the earlier of the context's own deadline and its
// parent's.
func (c *Ctx) Deadline() (time.Time, bool) {
	if c.Parent != nil {
		if pd, ok := c.Parent.Deadline(); ok && (c.deadline.IsZero() || pd.Before(c.deadline)) {
			return pd, true
		}
	}
	return c.deadline, !c.deadline.IsZero()
}

// Done returns a channel closed when the context ends. The first call
// links the context to its parent.
func (c *Ctx) Done() <-chan struct{} {
	c.mu.Lock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	d := c.done
	c.linkLocked()
	c.mu.Unlock()
	return d
}

// linkLocked arranges for the parent's end, and the context's own
// deadline, to end c; c.mu held.
func (c *Ctx) linkLocked() {
	c.armLocked()
	if c.parentStop != nil || c.err != nil || c.Parent == nil || c.Parent.Done() == nil {
		return
	}
	p := c.Parent
	// p.Err, not its cause: Err of a context is Canceled or
	// DeadlineExceeded, and context.Cause finds the parent's cause through
	// Value.
	c.parentStop = context.AfterFunc(p, func() { c.Cancel(p.Err()) })
}

// Err returns why the context ended, or nil.
func (c *Ctx) Err() error {
	c.mu.Lock()
	err := c.err
	expired := err == nil && c.timer == nil && !c.deadline.IsZero() && !time.Now().Before(c.deadline)
	c.mu.Unlock()
	if expired { // no timer watches the deadline: it passed unnoticed
		c.Cancel(context.DeadlineExceeded)
		return c.Err()
	}
	if err == nil && c.Parent != nil {
		if perr := c.Parent.Err(); perr != nil {
			c.Cancel(perr)
			c.mu.Lock() // a concurrent Cancel may have ended it first
			err = c.err
			c.mu.Unlock()
		}
	}
	return err
}

// ProgressReporter takes the progress a task reports (bus.Progress).
type ProgressReporter interface{ ReportProgress(v any) }

// ProgressKey is the context key of a task's ProgressReporter.
type ProgressKey struct{}

// Value returns the ProgressReporter for ProgressKey, if set; and the
// parent's value for any other key.
func (c *Ctx) Value(key any) any {
	if _, ok := key.(ProgressKey); ok && c.Progress != nil {
		return c.Progress
	}
	if c.Parent == nil {
		return nil
	}
	return c.Parent.Value(key)
}

// String describes the context for debugging.
func (c *Ctx) String() string { return "processional task context" }

// AfterFunc runs f in its own goroutine once the context ends, unless
// stop is called first; see context.AfterFunc, which calls it, so that a
// context derived from a Ctx costs no goroutine.
func (c *Ctx) AfterFunc(f func()) (stop func() bool) {
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
	c.linkLocked()
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

// Cancel ends the context with err, unless it has ended already, and
// releases its timer and its link to the parent. It is safe to call any
// number of times, from any goroutine.
func (c *Ctx) Cancel(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	funcs, timer, unlink := c.funcs, c.timer, c.parentStop
	c.funcs = nil
	c.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	if unlink != nil {
		unlink()
	}
	for a := range funcs {
		if a.state.CompareAndSwap(0, 1) {
			go a.f()
		}
	}
}
