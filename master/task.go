package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/lazyctx"
)

// Task is the future of one submitted function, whatever executor runs it:
// the calling goroutine, a new goroutine, a slave thread, a worker process.
// Its methods are safe for concurrent use.
//
// A task that fails and whose error nobody reads (by [Task.Wait]) is
// reported through slog when the Task is garbage collected, as the Python
// original prints "Exception in …".
type Task[T any] struct {
	name    string      // the function's name, for reports
	fin     atomic.Bool // set, under mu, once the task has its outcome
	grouped atomic.Bool // a group of its slave fails it when its caller's context ends (send)

	mu       sync.Mutex
	done     chan struct{} // made by the first Done; closed when the task has its outcome
	val      T
	err      error
	raw      []byte       // a remote result, decoded by the first Wait
	local    *lazyctx.Ctx // the function's context, for a local task; nil for a remote one, which is smaller without it
	remote   *slave       // the worker a remote task was sent to
	callID   uint64       // the remote call's id
	watching *ctxGroup    // the caller's context a remote task watches; its slave's mu guards it
	stop     func() bool  // stops the watch on the caller's context
	unread   *unreadError
	decoded  sync.Once
	userStop bool       // the outcome came from Cancel or the caller's context
	x        *taskExtra // what few tasks need: outcome reads it only for a task finished by its reply, set before
	kick     func()     // set while its caller reads the lane: finishing wakes it
	prog     *taskProg  // its progress, made at the first report or watch: few tasks report
}

// taskExtra is what few tasks need (an argument's Refs, a result's
// shared memory or chunks), set under the task's mu. The result's parts
// are set before the reply finishes the task, and outcome reads them
// only for a task finished by its reply; a task that finished otherwise
// gives a joined buffer straight back (giveBack).
type taskExtra struct {
	pins   []*refEntry // Refs the task's argument carries, held until it ends
	shm    *shmGuard   // the result's shared-memory buffers, until decoded
	joined []byte      // the buffer a chunked result was joined in
}

// extraLocked is t's extra, made now if it was not; t.mu held.
func (t *Task[T]) extraLocked() *taskExtra {
	if t.x == nil {
		t.x = new(taskExtra)
	}
	return t.x
}

// taskProg is a task's progress, under its mu.
type taskProg struct {
	raw []byte        // the latest progress report, encoded
	ch  chan struct{} // closed at the next report, or at the end; made on demand
}

// progLocked is t's progress, made now if it was not; t.mu held.
func (t *Task[T]) progLocked() *taskProg {
	if t.prog == nil {
		t.prog = new(taskProg)
	}
	return t.prog
}

func (t *Task[T]) finished() bool { return t.fin.Load() }

func (t *Task[T]) setKick(kick func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if kick != nil && t.fin.Load() {
		return false
	}
	t.kick = kick
	return true
}

// await blocks until the task finishes or ctx ends, and reports whether
// it finished. The caller of a task sent on a lane reads the lane while
// it waits.
func (t *Task[T]) await(ctx context.Context) bool {
	if t.fin.Load() {
		return true
	}
	t.mu.Lock()
	s := t.remote
	t.mu.Unlock()
	if s != nil && s.lane != nil {
		return s.awaitLane(ctx, t)
	}
	select {
	case <-t.doneChan():
		return true
	case <-ctx.Done():
		return false
	}
}

func (t *Task[T]) giveBack(buf []byte) {
	t.mu.Lock()
	if t.fin.Load() { // finished otherwise (cancelled): nobody decodes it
		t.mu.Unlock()
		chunks.PutBuffer(buf)
		return
	}
	t.extraLocked().joined = buf
	t.mu.Unlock()
}

// shmGuard drops the transits of a result's shared-memory buffers if the
// result is never decoded: their segments then need not wait for this
// process to exit.
type shmGuard struct {
	raw     []byte
	decoded atomic.Bool
}

func dropUndecoded(g *shmGuard) {
	if !g.decoded.Load() {
		codec.DropTransits(g.raw)
	}
}

func (t *Task[T]) guardShm(raw []byte) {
	g := &shmGuard{raw: raw}
	t.mu.Lock()
	t.extraLocked().shm = g
	t.mu.Unlock()
	runtime.AddCleanup(t, dropUndecoded, g)
}

type unreadError struct {
	name string
	err  error
	read atomic.Bool
}

func newTask[T any](name string) *Task[T] {
	return &Task[T]{name: name}
}

// newLocalTask returns a task whose function runs in this process, under
// a context derived from parent (which may be nil).
func newLocalTask[T any](parent context.Context, name string) *Task[T] {
	t := &Task[T]{name: name, local: new(lazyctx.Ctx)}
	t.local.Parent = parent
	t.local.Progress = taskProgress[T]{t}
	return t
}

// taskProgress takes a local task's progress reports (bus.Progress).
type taskProgress[T any] struct{ t *Task[T] }

func (p taskProgress[T]) ReportProgress(v any) {
	if raw, err := codec.Marshal(v); err == nil {
		p.t.progress(raw)
	}
}

// progress records the latest progress report, and wakes those who wait
// for it.
func (t *Task[T]) progress(raw []byte) {
	t.mu.Lock()
	if t.fin.Load() {
		t.mu.Unlock()
		return
	}
	p := t.progLocked()
	ch := p.ch
	p.raw, p.ch = raw, nil
	t.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// Progress decodes the latest progress the task's function reported
// (bus.Progress) into v, a pointer, and reports whether it reported any.
// A remote task's reports arrive at most every bus.ProgressEvery, the
// latest winning.
func (t *Task[T]) Progress(v any) (bool, error) {
	var raw []byte
	t.mu.Lock()
	if t.prog != nil {
		raw = t.prog.raw
	}
	t.mu.Unlock()
	if raw == nil {
		return false, nil
	}
	if err := codec.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("%w: %s: progress does not decode into %T: %v", bus.ErrResultType, t.name, v, err)
	}
	return true, nil
}

// ProgressChanged returns a channel closed at the task's next progress
// report, or when the task finishes: wait on it, then read
// [Task.Progress].
func (t *Task[T]) ProgressChanged() <-chan struct{} {
	t.nudge()
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.progLocked()
	if p.ch == nil {
		p.ch = make(chan struct{})
		if t.fin.Load() {
			close(p.ch)
		}
	}
	return p.ch
}

// Done is closed when the task has finished: with a result, an error, or
// by cancellation.
func (t *Task[T]) Done() <-chan struct{} {
	t.nudge()
	return t.doneChan()
}

// nudge has the lane a task was sent on read, should nobody: its waiter
// does not read it (see laneReaders).
func (t *Task[T]) nudge() {
	if t.fin.Load() {
		return
	}
	t.mu.Lock()
	s := t.remote
	t.mu.Unlock()
	if s != nil && s.lane != nil {
		s.lr.nudge()
	}
}

// doneChan is Done, without nudging the lane.
func (t *Task[T]) doneChan() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Made on demand: most pipelined tasks have finished before anyone
	// waits for them, and need no channel.
	if t.done == nil {
		t.done = make(chan struct{})
		if t.fin.Load() {
			close(t.done)
		}
	}
	return t.done
}

// Available reports whether the task has finished, without blocking.
func (t *Task[T]) Available() bool {
	if t.fin.Load() {
		return true
	}
	t.nudge()
	return t.fin.Load()
}

// Wait blocks until the task finishes or ctx ends, and returns the task's
// result and error. When ctx ends first, Wait returns ctx's error and the
// task goes on: Wait's ctx bounds the wait, not the task (see
// [Task.Cancel]). A panic in the function is an error wrapping
// [bus.ErrPanic] that carries the stack. Wait may be called any number of
// times.
func (t *Task[T]) Wait(ctx context.Context) (T, error) {
	if t == nil || t.name == "" && t.local == nil && !t.fin.Load() {
		var zero T
		return zero, fmt.Errorf("%w: a nil or zero Task: get one from Schedule, Thread, Go or Method", ErrBadCall)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if !t.await(ctx) {
		var zero T
		return zero, ctx.Err()
	}
	return t.outcome()
}

// outcome returns the finished task's result, decoding a remote result
// once.
func (t *Task[T]) outcome() (T, error) {
	t.decoded.Do(func() {
		if t.raw == nil {
			return
		}
		if err := codec.Unmarshal(t.raw, &t.val); err != nil {
			t.err = fmt.Errorf("%w: %s: result does not decode into %T: %v", bus.ErrResultType, t.name, t.val, err)
		}
		t.raw = nil
		x := t.x // set before the task finished, if at all
		if x == nil {
			return
		}
		if x.joined != nil {
			chunks.PutBuffer(x.joined) // decoded: nothing refers to it any more
			x.joined = nil
		}
		if x.shm != nil {
			x.shm.decoded.Store(true)
			if t.err != nil {
				codec.DropTransits(x.shm.raw)
			}
		}
	})
	if u := t.unread; u != nil {
		u.read.Store(true)
	}
	return t.val, t.err
}

// Cancel cancels the task: its function's context is cancelled (on the
// worker, for a remote task) and the task finishes at once with
// context.Canceled, unless it had finished already. Whatever the function
// returns afterwards is discarded. Cancel is idempotent.
func (t *Task[T]) Cancel() { t.abort(context.Canceled) }

// abort finishes the task with err, the caller's choice, and cancels the
// work.
func (t *Task[T]) abort(err error) {
	t.mu.Lock()
	if t.fin.Load() {
		t.mu.Unlock()
		return
	}
	remote, id := t.remote, t.callID
	t.userStop = true
	t.mu.Unlock()
	// The outcome first: cancelling the function's context may let it
	// return, and its result must not win over the cancellation.
	var zero T
	t.finish(zero, nil, err)
	if t.local != nil {
		t.local.Cancel(err)
	}
	if remote != nil {
		remote.cancelCall(id)
	}
}

// sent records that the task is call id on worker s, so that abort can
// cancel it there. If the task has finished already, it cancels the call
// at once.
func (t *Task[T]) sent(s *slave, id uint64) {
	t.mu.Lock()
	if !t.fin.Load() {
		t.remote, t.callID = s, id
		t.mu.Unlock()
		return
	}
	user := t.userStop
	t.mu.Unlock()
	if user {
		s.cancelCall(id)
	}
}

// watch finishes the task when ctx ends, with a watch of its own.
func (t *Task[T]) watch(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { t.abort(ctx.Err()) })
	t.mu.Lock()
	if !t.fin.Load() {
		t.stop = stop
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	stop()
}

// setPins hands t the Refs its argument carries; if t has ended, it lets
// go of them at once.
func (t *Task[T]) setPins(pins []*refEntry) {
	t.mu.Lock()
	if !t.fin.Load() {
		t.extraLocked().pins = pins
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	unpinAll(pins)
}

func (t *Task[T]) group() *ctxGroup     { return t.watching }
func (t *Task[T]) setGroup(g *ctxGroup) { t.watching = g; t.grouped.Store(g != nil) }

// finish records the outcome; only the first call counts. It reports
// whether this call was the first.
func (t *Task[T]) finish(val T, raw []byte, err error) bool {
	t.mu.Lock()
	if t.fin.Load() {
		t.mu.Unlock()
		return false
	}
	t.val, t.raw, t.err = val, raw, err
	stop, kick := t.stop, t.kick
	t.stop, t.remote, t.kick = nil, nil, nil
	var pins []*refEntry
	if t.x != nil {
		pins, t.x.pins = t.x.pins, nil
	}
	report := err != nil && !t.userStop
	if report {
		t.unread = &unreadError{name: t.name, err: err}
	}
	t.fin.Store(true)
	if t.done != nil {
		close(t.done)
	}
	if t.prog != nil && t.prog.ch != nil {
		close(t.prog.ch)
		t.prog.ch = nil
	}
	t.mu.Unlock()
	if kick != nil {
		kick()
	}
	if stop != nil {
		stop()
	}
	if pins != nil {
		unpinAll(pins)
	}
	if report {
		runtime.AddCleanup(t, reportUnread, t.unread)
	}
	return true
}

// resolve finishes a remote task from its reply.
func (t *Task[T]) resolve(raw []byte, remote *bus.RemoteError, err error) {
	var zero T
	switch {
	case err != nil:
		t.finish(zero, nil, err)
	case remote != nil:
		t.finish(zero, nil, remote)
	default:
		t.finish(zero, raw, nil)
	}
}

func reportUnread(u *unreadError) {
	if u.read.Load() {
		return
	}
	attrs := []any{"function", u.name, "err", u.err}
	switch u.err.(type) {
	case *bus.PanicError, *bus.RemoteError: // a slog.LogValuer: its group holds the stack
	default:
		var pe *bus.PanicError
		var re *bus.RemoteError
		switch {
		case errors.As(u.err, &pe):
			attrs = append(attrs, "stack", pe.Stack)
		case errors.As(u.err, &re) && re.Stack != "":
			attrs = append(attrs, "stack", re.Stack)
		}
	}
	slog.Error("processional: exception in task, and nobody read its error", attrs...)
}
