package master

import (
	"context"
	"fmt"
	"runtime"

	"github.com/processional/processional/bus"
)

// Invoke runs f(arg) on ex and blocks until it returns, or until ctx ends:
// then the task is cancelled (on the worker too) and Invoke returns ctx's
// error. Blocking calls from one master run on a worker in the order they
// were sent.
func Invoke[A, R any](ctx context.Context, ex Executor, f *bus.Func[A, R], arg A) (R, error) {
	ctx = orBackground(ctx)
	return wait(ctx, submit(ctx, ex, f, arg, bus.KindCall, false))
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
	return submit(orBackground(ctx), ex, f, arg, bus.KindCall, true)
}

// Thread submits f(arg) to ex to run concurrently with ex's other tasks,
// and returns its task at once: on a worker it runs in a goroutine of its
// own, beside the worker's blocking calls; on a slave thread, in a new
// goroutine. ctx works as for [Schedule].
func Thread[A, R any](ctx context.Context, ex Executor, f *bus.Func[A, R], arg A) *Task[R] {
	return submit(orBackground(ctx), ex, f, arg, bus.KindThread, true)
}

// wait waits for t, aborting it if ctx ends first.
func wait[T any](ctx context.Context, t *Task[T]) (T, error) {
	if !t.Available() {
		select {
		case <-t.Done():
		case <-ctx.Done():
			t.abort(ctx.Err())
		}
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

func submit[A, R any](ctx context.Context, ex Executor, f *bus.Func[A, R], arg A, kind bus.Kind, watch bool) *Task[R] {
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
		s.send(ctx, kind, name, f.ArgTypeName(), arg, t, watch)
		runtime.KeepAlive(h) // dropping the handle closes the slave: not before the call is sent
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
		s.send(ctx, kind, name, f.ArgTypeName(), arg, t, watch)
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
		if kind == bus.KindThread {
			return goLocal(ctx, name, call)
		}
		return threadRun(ctx, ex, name, call)
	}
	return failed[R](name, fmt.Errorf("%w: executor %T", ErrBadCall, ex))
}
