package master

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// Executor runs submitted functions: [InCaller], [InGoroutine], a
// [*SlaveThread] or a [*Slave]. The same registered function can be
// submitted to any of them with [Invoke], [Schedule] and [Thread].
type Executor interface {
	executor() // sealed: the executors are this package's
}

type callerExec struct{}

func (callerExec) executor()      {}
func (callerExec) String() string { return "caller" }

type goroutineExec struct{}

func (goroutineExec) executor()      {}
func (goroutineExec) String() string { return "goroutine" }

// InCaller runs each task in the goroutine that submits it: Schedule
// returns a task that has already finished.
var InCaller Executor = callerExec{}

// InGoroutine runs each task in a new goroutine.
var InGoroutine Executor = goroutineExec{}

// Go runs fn in a new goroutine and returns its task at once. fn's context
// derives from ctx and is also cancelled by [Task.Cancel]; a panic in fn
// fails the task with an error wrapping [bus.ErrPanic] that carries the
// stack. It costs one goroutine and one task: fn's context links itself
// to ctx only if fn watches it (Done).
func Go[T any](ctx context.Context, fn func(ctx context.Context) (T, error)) *Task[T] {
	return goLocal(ctx, "", fn)
}

func goLocal[T any](ctx context.Context, name string, fn func(context.Context) (T, error)) *Task[T] {
	t := newLocalTask[T](ctx, name)
	if fn == nil {
		var zero T
		t.finish(zero, nil, fmt.Errorf("%w: nil function", ErrBadCall))
		return t
	}
	go runLocal(t, fn) // the task's: Wait awaits it, as the caller of a go statement would
	return t
}

// runLocal runs fn behind recover and finishes t with its outcome.
func runLocal[T any](t *Task[T], fn func(context.Context) (T, error)) {
	ctx := t.local
	defer ctx.Cancel(context.Canceled) // unlinks from the parent
	var (
		val T
		err error
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = wire.NewPanicError(r)
			}
		}()
		if err = ctx.Err(); err == nil {
			val, err = fn(ctx)
		}
	}()
	t.finish(val, nil, err)
}

// SlaveThread runs tasks one after the other, in the order they were
// submitted, on one goroutine locked to its own OS thread
// (runtime.LockOSThread): for code that needs thread affinity, or to keep
// a sequence of tasks in order off the caller's goroutine. A panic fails
// its task only. Its methods are safe for concurrent use.
type SlaveThread struct {
	mu     sync.Mutex
	queue  []func()
	wake   chan struct{}
	closed bool
	exited chan struct{}
}

// NewThread starts a slave thread. Close it when done.
func NewThread() *SlaveThread {
	th := &SlaveThread{wake: make(chan struct{}, 1), exited: make(chan struct{})}
	go th.loop() // th's: Close stops and awaits it
	return th
}

func (*SlaveThread) executor() {}

// String describes the executor for messages.
func (*SlaveThread) String() string { return "slave thread" }

func (th *SlaveThread) loop() {
	// The goroutine never unlocks: when it returns, its thread exits with
	// it, and whatever thread state the tasks changed goes too.
	runtime.LockOSThread()
	defer close(th.exited)
	var batch []func()
	for {
		th.mu.Lock()
		for len(th.queue) == 0 {
			if th.closed {
				th.mu.Unlock()
				return
			}
			th.mu.Unlock()
			<-th.wake
			th.mu.Lock()
		}
		batch, th.queue = th.queue, batch[:0]
		th.mu.Unlock()
		for i, job := range batch {
			job()
			batch[i] = nil
		}
	}
}

// usable reports why th takes no task: nil, zero, or closed.
func (th *SlaveThread) usable() error {
	if th == nil || th.exited == nil {
		return fmt.Errorf("%w: a nil or zero SlaveThread: get one from NewThread", ErrBadCall)
	}
	th.mu.Lock()
	defer th.mu.Unlock()
	if th.closed {
		return fmt.Errorf("%w: slave thread is closed", bus.ErrClosed)
	}
	return nil
}

// submit queues job; it reports false when the thread is closed.
func (th *SlaveThread) submit(job func()) bool {
	th.mu.Lock()
	if th.closed {
		th.mu.Unlock()
		return false
	}
	th.queue = append(th.queue, job)
	th.mu.Unlock()
	select {
	case th.wake <- struct{}{}:
	default:
	}
	return true
}

// Close stops taking tasks, waits until the queued ones have run, and lets
// the thread exit. Tasks submitted afterwards fail with [bus.ErrClosed].
// Close is idempotent. [Thread] tasks, which run in goroutines of their
// own, are not waited for.
func (th *SlaveThread) Close() error {
	if th == nil || th.exited == nil {
		return nil
	}
	th.mu.Lock()
	th.closed = true
	th.mu.Unlock()
	select {
	case th.wake <- struct{}{}:
	default:
	}
	<-th.exited
	return nil
}

// threadRun submits fn to th.
func threadRun[T any](ctx context.Context, th *SlaveThread, name string, fn func(context.Context) (T, error)) *Task[T] {
	t := newLocalTask[T](ctx, name)
	if !th.submit(func() { runLocal(t, fn) }) {
		var zero T
		t.finish(zero, nil, fmt.Errorf("%w: slave thread is closed", bus.ErrClosed))
	}
	return t
}

// orBackground returns ctx, or Background for a nil ctx.
func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}
