package master_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

func TestGo(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		fn      func(context.Context) (int, error)
		want    int
		wantErr error
	}{
		{"result", func(context.Context) (int, error) { return 42, nil }, 42, nil},
		{"error", func(context.Context) (int, error) { return 0, ErrNegative }, 0, ErrNegative},
		{"panic", func(context.Context) (int, error) { panic("boom") }, 0, bus.ErrPanic},
		{"nil function", nil, 0, master.ErrBadCall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := master.Go(ctx, tc.fn)
			got, err := task.Wait(ctx)
			if got != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Wait = %d, %v; want %d, %v", got, err, tc.want, tc.wantErr)
			}
			if !task.Available() {
				t.Fatal("not Available after Wait")
			}
			select {
			case <-task.Done():
			default:
				t.Fatal("Done not closed after Wait")
			}
		})
	}
}

func TestPanicCarriesStack(t *testing.T) {
	_, err := master.Go(context.Background(), func(context.Context) (int, error) { panic(errors.New("inner")) }).Wait(context.Background())
	var pe *bus.PanicError
	if !errors.As(err, &pe) || !strings.Contains(pe.Stack, "local_test.go") {
		t.Fatalf("err = %v, want a PanicError whose stack names the panicking file", err)
	}
	if !strings.Contains(err.Error(), "inner") {
		t.Fatalf("err = %v, want the panic value in the message", err)
	}
}

func TestCancelLocal(t *testing.T) {
	ctx := context.Background()
	seen := make(chan error, 1)
	started := make(chan struct{})
	task := master.Go(ctx, func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		seen <- ctx.Err()
		return 1, nil
	})
	if task.Available() {
		t.Fatal("Available before the function returned")
	}
	<-started
	task.Cancel()
	task.Cancel() // idempotent
	if _, err := task.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	if err := <-seen; !errors.Is(err, context.Canceled) {
		t.Fatalf("the function's context: %v", err)
	}

	// The caller's context ending cancels the task too.
	cctx, cancel := context.WithCancel(ctx)
	task = master.Go(cctx, func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
	cancel()
	if _, err := task.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}

	// Wait's own context bounds the wait, not the task.
	release := make(chan struct{})
	task = master.Go(ctx, func(ctx context.Context) (int, error) { <-release; return 3, nil })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer wcancel()
	if _, err := task.Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	close(release)
	if v, err := task.Wait(ctx); v != 3 || err != nil {
		t.Fatalf("Wait = %d, %v after the timeout; want 3", v, err)
	}
}

// rec records the thread and order of its calls, for TestSlaveThread.
var (
	recMu             sync.Mutex
	recTids, recOrder []int
	rec               = bus.Register("test.thread.rec", func(ctx context.Context, i int) (int, error) {
		recMu.Lock()
		defer recMu.Unlock()
		recTids = append(recTids, threadID())
		recOrder = append(recOrder, i)
		return i, nil
	})
)

func TestSlaveThread(t *testing.T) {
	ctx := context.Background()
	th := master.NewThread()
	// Every task runs on the same OS thread, in order.
	recMu.Lock()
	recTids, recOrder = nil, nil
	recMu.Unlock()
	var tasks []*master.Task[int]
	for i := range 100 {
		tasks = append(tasks, master.Schedule(ctx, th, rec, i))
	}
	// A panic fails its task only.
	bad := master.Schedule(ctx, th, Panic, "on the thread")
	after := master.Schedule(ctx, th, rec, 100)
	for _, task := range tasks {
		if _, err := task.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bad.Wait(ctx); !errors.Is(err, bus.ErrPanic) {
		t.Fatalf("err = %v, want ErrPanic", err)
	}
	if v, err := after.Wait(ctx); v != 100 || err != nil {
		t.Fatalf("task after the panic: %d, %v", v, err)
	}
	recMu.Lock()
	tids, order := recTids, recOrder
	recMu.Unlock()
	for i := range order {
		if order[i] != i || tids[i] != tids[0] {
			t.Fatalf("task %d ran as %d on thread %d (first on %d)", i, order[i], tids[i], tids[0])
		}
	}
	if tids[0] == threadID() {
		t.Fatal("the slave thread ran on the caller's thread")
	}
	// Close waits for queued tasks; later tasks fail with ErrClosed.
	slow := master.Schedule(ctx, th, Sleep, 50*time.Millisecond)
	th.Close()
	if !slow.Available() {
		t.Fatal("Close returned before the queued task ran")
	}
	if _, err := master.Invoke(ctx, th, Sum, []int{1}); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("after Close: err = %v, want ErrClosed", err)
	}
	th.Close() // idempotent
}

func TestInCallerAndInGoroutine(t *testing.T) {
	ctx := context.Background()
	for _, ex := range []master.Executor{master.InCaller, master.InGoroutine} {
		n, err := master.Invoke(ctx, ex, Sum, []int{1, 2})
		if n != 3 || err != nil {
			t.Fatalf("%v: %d, %v", ex, n, err)
		}
		if _, err := master.Invoke(ctx, ex, Sum, []int{-1}); !errors.Is(err, ErrNegative) {
			t.Fatalf("%v: err = %v", ex, err)
		}
	}
	if task := master.Schedule(ctx, master.InCaller, Sum, []int{1}); !task.Available() {
		t.Fatal("InCaller: the task should have finished before Schedule returned")
	}
	if _, err := master.Invoke[[]int, int](ctx, nil, Sum, nil); !errors.Is(err, master.ErrBadCall) {
		t.Fatalf("nil executor: err = %v, want ErrBadCall", err)
	}
	if _, err := master.Invoke[[]int, int](ctx, master.InCaller, nil, nil); !errors.Is(err, master.ErrBadCall) {
		t.Fatalf("nil function: err = %v, want ErrBadCall", err)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestUnreadErrorIsReported(t *testing.T) {
	var buf syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	defer slog.SetDefault(old)

	ctx := context.Background()
	func() {
		task := master.Schedule(ctx, master.InGoroutine, Sum, []int{-5})
		<-task.Done() // finished, error never read
		read := master.Schedule(ctx, master.InGoroutine, Sum, []int{-6})
		read.Wait(ctx) // read: not reported
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "item -5") && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	out := buf.String()
	if !strings.Contains(out, "nobody read its error") || !strings.Contains(out, "test.sum") {
		t.Fatalf("log = %q, want a report of the unread error naming the function", out)
	}
	if strings.Contains(out, "item -6") {
		t.Fatalf("log = %q: an error that was read was reported", out)
	}
}

// A remote panic nobody read is reported with its stack, once: the error
// logs its own stack (slog.LogValuer), and the report adds none.
func TestUnreadRemotePanicIsReportedOnce(t *testing.T) {
	var buf syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	defer slog.SetDefault(old)

	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()
	func() {
		task := master.Schedule(ctx, s, Panic, "unread boom")
		<-task.Done() // finished, error never read
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "unread boom") && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	out := buf.String()
	if !strings.Contains(out, "nobody read its error") || !strings.Contains(out, "unread boom") {
		t.Fatalf("log = %q, want a report of the unread panic", out)
	}
	if n := strings.Count(out, " [running]:"); n != 1 {
		t.Fatalf("log = %q: the stack appears %d times, want once", out, n)
	}
}
