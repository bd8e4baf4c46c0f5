package master

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// Invoke runs f(arg) on ex and blocks until it returns, or until ctx ends:
// then the task is cancelled (on the worker too) and Invoke returns ctx's
// error. Blocking calls from one master run on a worker in the order they
// were sent.
func Invoke[A, R any](ctx context.Context, ex Executor, f *bus.Func[A, R], arg A) (R, error) {
	ctx = orBackground(ctx)
	t := submit(ctx, ex, f, arg, wire.KindCall, watchIfBusy)
	if t.grouped.Load() {
		// The slave's group for ctx fails the task when ctx ends: the wait
		// need not watch ctx too, on a channel that every caller under
		// ctx would lock.
		return wait(context.Background(), t)
	}
	return wait(ctx, t)
}

// Schedule submits f(arg) to ex and returns its task at once. On a worker
// or a slave thread, scheduled tasks run in the order they were scheduled,
// after the calls sent before them.
//
// The function's context derives from ctx. On a worker, the task fails as
// soon as ctx ends (and the worker cancels the function's context); in
// this process, the function's context ends with ctx, and a task that has
// not started yet fails without running.
func Schedule[A, R any](ctx context.Context, ex Executor, f *bus.Func[A, R], arg A) *Task[R] {
	return submit(orBackground(ctx), ex, f, arg, wire.KindCall, watchGroup)
}

// Thread submits f(arg) to ex to run concurrently with ex's other tasks,
// and returns its task at once: on a worker it runs in a goroutine of its
// own, beside the worker's blocking calls; on a slave thread, in a new
// goroutine. ctx works as for [Schedule].
func Thread[A, R any](ctx context.Context, ex Executor, f *bus.Func[A, R], arg A) *Task[R] {
	return submit(orBackground(ctx), ex, f, arg, wire.KindThread, watchGroup)
}

// wait waits for t, aborting it if ctx ends first.
func wait[T any](ctx context.Context, t *Task[T]) (T, error) {
	if !t.await(ctx) {
		t.abort(ctx.Err())
	}
	return t.outcome()
}

// failed returns a task that failed with err.
func failed[R any](name string, err error) *Task[R] {
	t := newTask[R](name)
	var zero R
	t.finish(zero, nil, err)
	return t
}

func submit[A, R any](ctx context.Context, ex Executor, f *bus.Func[A, R], arg A, kind wire.Kind, watch watchMode) *Task[R] {
	if f == nil {
		return failed[R]("", fmt.Errorf("%w: nil function", ErrBadCall))
	}
	name := f.Name()
	if h, ok := ex.(*Slave); ok {
		var s *slave
		if h != nil {
			s = h.slave
		}
		if s == nil || s.m == nil {
			return failed[R](name, fmt.Errorf("%w: a nil or zero Slave: get one from Spawn", ErrBadCall))
		}
		t := newTask[R](name)
		s.send(ctx, kind, name, typeName[A](), arg, t, watch)
		runtime.KeepAlive(h) // dropping the handle closes the slave: not before the call is sent
		return t
	}
	if e, ok := ex.(*idempotentSlave); ok {
		if e == nil || e.h == nil || e.h.slave == nil || e.h.m == nil {
			return failed[R](name, fmt.Errorf("%w: a nil or zero idempotent Slave: get one from Slave.Idempotent", ErrBadCall))
		}
		t := newTask[R](name)
		if watch == watchIfBusy {
			watch = watchNone // a retry's send might not join a group: its caller watches ctx
		}
		r := &retrying[R]{Task: t, s: e.h.slave, ctx: ctx, kind: kind, fn: name, argType: typeName[A](), arg: arg, watchCtx: watch}
		r.left.Store(IdempotentAttempts - 1)
		e.h.slave.send(ctx, kind, name, r.argType, arg, r, watch)
		runtime.KeepAlive(e.h)
		return t
	}
	if pl, ok := ex.(*Pool); ok {
		if pl == nil || pl.m == nil {
			return failed[R](name, fmt.Errorf("%w: a nil or zero Pool: get one from Master.Pool", ErrBadCall))
		}
		s, err := pl.pick()
		if err != nil {
			return failed[R](name, err)
		}
		t := newTask[R](name)
		s.send(ctx, kind, name, typeName[A](), arg, t, watch)
		return t
	}
	call := func(ctx context.Context) (R, error) { return f.Call(ctx, arg) }
	switch ex := ex.(type) {
	case callerExec:
		t := newLocalTask[R](ctx, name)
		runLocal(t, call)
		return t
	case goroutineExec:
		return goLocal(ctx, name, call)
	case *SlaveThread:
		if err := ex.usable(); err != nil {
			return failed[R](name, err)
		}
		if kind == wire.KindThread {
			return goLocal(ctx, name, call)
		}
		return threadRun(ctx, ex, name, call)
	}
	return failed[R](name, fmt.Errorf("%w: executor %T", ErrBadCall, ex))
}

// IdempotentAttempts is how many times in all a task sent through
// [Slave.Idempotent] is sent.
const IdempotentAttempts = 4

// Idempotent returns an executor that sends tasks to the worker as s does,
// marked idempotent: the function may run more than once for one task.
// NATS delivers a message at most once, so a call in flight when the
// worker's or this master's connection to the NATS server dropped and came
// back may have been lost, or its answer: such a task fails with
// [bus.ErrWorkerLost] on the Slave, and through the executor Idempotent returns it
// is sent again instead, once the master's connection is back, while the
// worker is still open and the task's context lasts, up to
// [IdempotentAttempts] times in all. A blocking call sent again runs after
// the calls sent since. A worker that died, or whose lease lapsed, is not
// tried again: the task fails with the worker's error ([Map] with
// [Idempotent] goes on with another member of a pool).
//
// The executor holds the Slave: it is not closed for being unreachable
// while the executor is reachable.
func (h *Slave) Idempotent() Executor { return &idempotentSlave{h: h} }

// idempotentSlave is the executor of [Slave.Idempotent].
type idempotentSlave struct{ h *Slave }

func (*idempotentSlave) executor() {}

// String describes the executor for messages.
func (e *idempotentSlave) String() string { return "idempotent " + e.h.String() }

// retrying is a task sent through [Slave.Idempotent]: it stands for its
// task in the slave's pending set, and sends the call again when it was
// lost to a reconnect.
type retrying[R any] struct {
	*Task[R]
	s        *slave
	ctx      context.Context
	kind     wire.Kind
	fn       string
	argType  string
	arg      any
	watchCtx watchMode
	left     atomic.Int32 // sendings left
	watched  atomic.Bool  // the per-task watch of ctx is set: once is enough
	pinned   atomic.Bool  // the first sending's pins hold the argument's Refs
}

// resolve finishes the task, unless the call may have been lost to a
// reconnect and may be sent again.
func (r *retrying[R]) resolve(raw []byte, remote *bus.RemoteError, err error) {
	if err != nil && remote == nil && errors.Is(err, bus.ErrWorkerLost) && !r.Available() &&
		r.ctx.Err() == nil && r.s.alive() && r.left.Add(-1) >= 0 {
		// No owner awaits it: it ends within retryPoll of the slave's close, the task's end or its context's.
		go r.again()
		return
	}
	r.Task.resolve(raw, remote, err)
}

// retryPoll is how often a call waiting to be sent again looks whether the
// master's connection is back.
const retryPoll = 20 * time.Millisecond

// again sends the call again once the master's connection is back: sent
// while it is down, the call would wait in its reconnect buffer, or find
// it full.
func (r *retrying[R]) again() {
	nc := r.s.m.nc
	for !nc.IsConnected() && !nc.IsClosed() && r.s.alive() && !r.Available() {
		select {
		case <-r.ctx.Done():
			r.abort(r.ctx.Err())
			return
		case <-time.After(retryPoll):
		}
	}
	if r.Available() {
		return // cancelled meanwhile
	}
	r.s.send(r.ctx, r.kind, r.fn, r.argType, r.arg, r, r.watchCtx)
}

func (r *retrying[R]) watch(ctx context.Context) {
	if r.watched.CompareAndSwap(false, true) {
		r.Task.watch(ctx)
	}
}

func (r *retrying[R]) setPins(pins []*refEntry) {
	if r.pinned.CompareAndSwap(false, true) {
		r.Task.setPins(pins)
		return
	}
	unpinAll(pins) // the first sending's pins hold the same Refs until the task ends
}

// typeName is the name of A as it travels in a call envelope, for the
// worker's error messages: what registry.Function.ArgTypeName gives there.
func typeName[A any]() string { return reflect.TypeFor[A]().String() }
