package master_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
	"github.com/processional/processional/worker"
)

func TestSlaveInvoke(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()
	n, err := master.Invoke(ctx, s, Sum, []int{1, 2, 3})
	if err != nil || n != 6 {
		t.Fatalf("Invoke = %d, %v; want 6", n, err)
	}
	// Sentinel errors survive the trip.
	_, err = master.Invoke(ctx, s, Sum, []int{1, -2})
	if !errors.Is(err, ErrNegative) {
		t.Fatalf("err = %v, want ErrNegative", err)
	}
	var re *bus.RemoteError
	if !errors.As(err, &re) || re.Worker != s.ID() || re.Function != "test.sum" {
		t.Fatalf("err = %#v, want a RemoteError naming the worker and function", err)
	}
	// A panic arrives with its stack.
	_, err = master.Invoke(ctx, s, Panic, "boom")
	if !errors.Is(err, bus.ErrPanic) || !errors.As(err, &re) || !strings.Contains(re.Stack, "master_test") {
		t.Fatalf("err = %v, want a panic with a stack", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := master.Invoke(ctx, s, Sum, []int{1}); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("call after close: err = %v, want ErrClosed", err)
	}
	if !proctest.Gone(s.PID(), 0) {
		t.Fatalf("worker pid %d still runs after Close", s.PID())
	}
}

func TestOrderAndPipelining(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()
	const n = 2000
	tasks := make([]*master.Task[[]int], n)
	for i := range tasks {
		tasks[i] = master.Schedule(ctx, s, Append, i)
	}
	got, err := tasks[n-1].Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range got {
		if x != i {
			t.Fatalf("order[%d] = %d: blocking calls ran out of order", i, x)
		}
	}
	for _, task := range tasks {
		if _, err := task.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestThreadRunsConcurrently(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()
	// A long blocking call does not hold back a thread call.
	slow := master.Schedule(ctx, s, Sleep, 2*time.Second)
	fast := master.Thread(ctx, s, Sleep, time.Millisecond)
	if _, err := fast.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if slow.Available() {
		t.Fatal("the blocking call finished before the concurrent one")
	}
	slow.Cancel()
}

func TestCancelAndDeadline(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()

	task := master.Schedule(ctx, s, Sleep, time.Hour)
	task.Cancel()
	if _, err := task.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	// The worker's function saw the cancel: the next blocking call runs
	// at once, not after the hour.
	bounded, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	if n, err := master.Invoke(bounded, s, Sum, []int{2}); err != nil || n != 2 {
		t.Fatalf("after cancel: %d, %v", n, err)
	}

	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := master.Invoke(dctx, s, Sleep, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	// The deadline travels to the worker.
	dctx2, cancel2 := context.WithTimeout(ctx, time.Minute)
	defer cancel2()
	left, err := master.Invoke(dctx2, s, Deadline, struct{}{})
	if err != nil || left <= 0 || left > time.Minute {
		t.Fatalf("deadline left on worker = %v, %v", left, err)
	}
}

func TestScheduleContextEnds(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	bg := context.Background()
	// Many tasks under one context: ending it fails them all at once.
	ctx, cancel := context.WithCancel(bg)
	var tasks []*master.Task[string]
	for range 20 {
		tasks = append(tasks, master.Schedule(ctx, s, Sleep, time.Hour))
	}
	thread := master.Thread(ctx, s, Sleep, time.Hour)
	cancel()
	for _, task := range append(tasks, thread) {
		wctx, wcancel := context.WithTimeout(bg, 10*time.Second)
		_, err := task.Wait(wctx)
		wcancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want Canceled", err)
		}
	}
	// The worker cancelled them too: the next blocking call runs at once.
	bounded, stop := context.WithTimeout(bg, 20*time.Second)
	defer stop()
	if n, err := master.Invoke(bounded, s, Sum, []int{3}); n != 3 || err != nil {
		t.Fatalf("after the context ended: %d, %v", n, err)
	}
	// A context per call, each finishing normally, and one whose deadline
	// passes while its task waits in the queue.
	for i := range 50 {
		cctx, ccancel := context.WithTimeout(bg, time.Minute)
		if n, err := master.Schedule(cctx, s, Sum, []int{i}).Wait(bg); n != i || err != nil {
			t.Fatalf("call %d: %d, %v", i, n, err)
		}
		ccancel()
	}
	blocker := master.Schedule(bg, s, Sleep, 300*time.Millisecond)
	dctx, dcancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer dcancel()
	late := master.Schedule(dctx, s, Sum, []int{1})
	if _, err := late.Wait(bg); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if _, err := blocker.Wait(bg); err != nil {
		t.Fatal(err)
	}
}

var Big = bus.Register("test.big", func(ctx context.Context, n int) ([]byte, error) { return make([]byte, n), nil })

func TestPastMaxPayload(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Past the server's max payload, values travel in chunks (see
	// chunks_test.go for the limit).
	if b, err := master.Invoke(ctx, s, Big, 2<<20); len(b) != 2<<20 || err != nil {
		t.Fatalf("a 2 MiB result: %d bytes, %v", len(b), err)
	}
	if n, err := master.Invoke(ctx, s, Len, make([]byte, 2<<20)); n != 2<<20 || err != nil {
		t.Fatalf("a 2 MiB argument: %d, %v", n, err)
	}
	if n, err := master.Invoke(ctx, s, Len, make([]byte, 1000)); n != 1000 || err != nil {
		t.Fatalf("after: %d, %v", n, err)
	}
}

var Len = bus.Register("test.len", func(ctx context.Context, b []byte) (int, error) { return len(b), nil })

func TestConcurrentWaits(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	task := master.Schedule(ctx, s, Sum, []int{4, 5})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if n, err := task.Wait(ctx); n != 9 || err != nil {
				t.Errorf("Wait = %d, %v", n, err)
			}
		})
	}
	wg.Wait()
}

// Invokes from many goroutines under one context, while the worker is
// busy: their slave's group for the context fails them when it ends
// (they do not each watch its Done channel), on a worker by NATS and on
// one with a lane.
func TestInvokeManyContextEnds(t *testing.T) {
	m := newMaster(t)
	for name, s := range map[string]*master.Slave{"nats": spawn(t, m, master.WithoutLane()), "lane": spawn(t, m)} {
		t.Run(name, func(t *testing.T) {
			bg := context.Background()
			ctx, cancel := context.WithCancel(bg)
			busy := master.Schedule(ctx, s, Sleep, time.Hour) // the calls below queue behind it
			const callers = 50
			errs := make(chan error, callers)
			for range callers {
				go func() {
					_, err := master.Invoke(ctx, s, Sleep, time.Hour)
					errs <- err
				}()
			}
			awaitQueued(t, m, s, callers+1) // all sent, in flight
			cancel()
			timeout := time.After(20 * time.Second)
			for range callers {
				select {
				case err := <-errs:
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("err = %v, want Canceled", err)
					}
				case <-timeout:
					t.Fatal("an Invoke still waits 20 s after its context ended")
				}
			}
			if _, err := busy.Wait(bg); !errors.Is(err, context.Canceled) {
				t.Fatalf("the busy call: %v, want Canceled", err)
			}
			// The worker cancelled them too: the next call runs at once.
			bounded, stop := context.WithTimeout(bg, 20*time.Second)
			defer stop()
			if n, err := master.Invoke(bounded, s, Sum, []int{4}); n != 4 || err != nil {
				t.Fatalf("after the context ended: %d, %v", n, err)
			}
		})
	}
}

// awaitQueued waits until worker s holds n calls, queued or running, as
// its pending verb lists them.
func awaitQueued(t *testing.T, m *master.Master, s *master.Slave, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		calls, _ := pendingCalls(t, m, s)
		if len(calls) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker holds %d calls after 20 s, want %d", len(calls), n)
		}
		time.Sleep(10 * time.Millisecond) // a poll: the worker says nothing of calls arriving
	}
}

// pendingCalls is what worker s's pending verb lists: its calls queued
// or running, and the message that said so.
func pendingCalls(t *testing.T, m *master.Master, s *master.Slave) ([]worker.PendingCall, []byte) {
	t.Helper()
	msg, err := m.Conn().Request(wire.ControlSubject(s.ID(), "pending"), nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var calls []worker.PendingCall
	if err := json.Unmarshal(msg.Data, &calls); err != nil {
		t.Fatal(err)
	}
	return calls, msg.Data
}
