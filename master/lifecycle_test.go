//go:build unix

package master_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/embedded"
	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/master"
)

func TestWorkerExitsDuringCall(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pending := master.Schedule(ctx, s, Sleep, time.Hour)
	_, err := master.Thread(ctx, s, Exit, 7).Wait(ctx)
	if !errors.Is(err, bus.ErrWorkerLost) || !strings.Contains(err.Error(), "exit status 7") {
		t.Fatalf("err = %v, want ErrWorkerLost with exit status 7", err)
	}
	if _, err := pending.Wait(ctx); !errors.Is(err, bus.ErrWorkerLost) {
		t.Fatalf("queued call: err = %v, want ErrWorkerLost", err)
	}
}

func TestTerminateKillsTheProcessGroup(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()
	pid, err := master.Invoke(ctx, s, Grandchild, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	pending := master.Schedule(ctx, s, Sleep, time.Hour)
	if err := s.Terminate(); err != nil {
		t.Fatal(err)
	}
	if _, err := pending.Wait(ctx); !errors.Is(err, bus.ErrWorkerLost) || !strings.Contains(err.Error(), "terminated") {
		t.Fatalf("pending call: %v, want ErrWorkerLost saying the worker was terminated", err)
	}
	if !proctest.Gone(s.PID(), 5*time.Second) || !proctest.Gone(pid, 5*time.Second) {
		t.Fatalf("worker %d or its child %d outlived Terminate", s.PID(), pid)
	}
	s.Terminate() // idempotent
	s.Close()
}

func TestCloseKeepsRepliesInFlight(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tasks := make([]*master.Task[int], 20000)
	for i := range tasks {
		tasks[i] = master.Schedule(ctx, s, Len, []byte("x"))
	}
	s.Close()
	for i, task := range tasks {
		if _, err := task.Wait(ctx); err != nil {
			t.Fatalf("task %d of %d, sent before Close: %v", i, len(tasks), err)
		}
	}
}

// A spawned worker holds the child lease, apart from the lease of workers
// elsewhere: stopped past the one and within the other, it is not lost,
// and answers once it runs again.
func TestChildLeaseApart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const lease, child, stop = 200 * time.Millisecond, 6 * time.Second, time.Second
	m, err := master.New(ctx, master.WithLease(lease, lease/4), master.WithChildLease(child))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := spawn(t, m)
	if err := syscall.Kill(s.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Five leases elsewhere go by: the master's heartbeats on the lane go
	// unanswered, as they would from a worker elsewhere that is lost.
	timer := time.NewTimer(stop)
	select {
	case <-timer.C:
	case <-s.Exited():
		t.Fatal("the stopped worker was killed within its child lease")
	}
	if err := syscall.Kill(s.PID(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if n, err := master.Invoke(ctx, s, Sum, []int{2, 3}); n != 5 || err != nil {
		t.Fatalf("after a stop of %s (lease %s, child lease %s): %d, %v; want 5", stop, lease, child, n, err)
	}
}

func TestHungWorkerIsLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lease := time.Second // short leases flake under a loaded -race run
	m, err := master.New(ctx, master.WithLease(lease, lease/10))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := spawn(t, m)
	pending := master.Schedule(ctx, s, Sleep, time.Hour)
	concurrent := master.Thread(ctx, s, Sleep, time.Hour)
	// A worker that hangs (here: stopped) answers no heartbeat.
	if err := syscall.Kill(s.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, task := range []*master.Task[string]{pending, concurrent} {
		if _, err := task.Wait(ctx); !errors.Is(err, bus.ErrWorkerLost) || !strings.Contains(err.Error(), "no heartbeat") {
			t.Fatalf("err = %v, want ErrWorkerLost saying it answered no heartbeat", err)
		}
	}
	if d := time.Since(start); d > 5*lease {
		t.Fatalf("the hung worker was noticed after %s, lease %s", d, lease)
	}
	if !proctest.Gone(s.PID(), 5*time.Second) {
		t.Fatalf("the hung worker %d still runs", s.PID())
	}
}

func TestDroppedSlaveIsClosed(t *testing.T) {
	m := newMaster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pid, done := func() (int, *master.Task[int]) {
		s, err := m.Spawn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A task in flight when the handle is dropped still gets its
		// result: the slave closes gracefully.
		return s.PID(), master.Schedule(ctx, s, Sum, []int{40, 2})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !proctest.Gone(pid, 0) {
		if time.Now().After(deadline) {
			t.Fatalf("worker %d still runs after its handle was dropped", pid)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n, err := done.Wait(ctx); n != 42 || err != nil {
		t.Fatalf("the task sent before the drop: %d, %v", n, err)
	}
}

func TestDetach(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const lease = time.Second
	m, err := master.New(ctx, master.WithChildLease(lease))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s := spawn(t, m)
	slow := master.Schedule(ctx, s, Sleep, lease*3/2) // past a lease
	queued := master.Schedule(ctx, s, Sum, []int{1, 2})
	if err := s.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := master.Invoke(ctx, s, Sum, nil); !errors.Is(err, bus.ErrClosed) || !strings.Contains(err.Error(), "detached") {
		t.Fatalf("a call after Detach: %v, want ErrClosed saying it is detached", err)
	}
	// The calls sent before run to the end, past a lease without
	// heartbeats, and then the worker exits on its own.
	if _, err := slow.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := queued.Wait(ctx); n != 3 || err != nil {
		t.Fatalf("queued before Detach: %d, %v", n, err)
	}
	select {
	case <-s.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("the detached worker did not exit on its own")
	}
	if err := s.Detach(ctx); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Detach of a gone worker: %v", err)
	}
}

func TestPersist(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := master.New(ctx, master.WithNATS(srv.URL()), master.WithToken(srv.Token()), master.WithLease(500*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Spawn(ctx)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	pid, id := s.PID(), s.ID()
	defer syscall.Kill(pid, syscall.SIGKILL) // whatever happens below
	if err := s.Persist(ctx); err != nil {
		t.Fatal(err)
	}
	// The master goes: the worker stays, past its lease.
	m.Close()
	if proctest.Gone(pid, time.Second) {
		t.Fatal("the persistent worker went with its master")
	}
	// Another master reaches it by its id.
	c, err := master.Connect(ctx, srv.URL(), master.WithToken(srv.Token()), master.WithServerID(id))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := master.Invoke(ctx, c, Sum, []int{20, 22}); n != 42 || err != nil {
		t.Fatalf("through another master: %d, %v", n, err)
	}
	if err := c.StopServer(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !proctest.Gone(pid, 10*time.Second) {
		t.Fatal("the persistent worker did not stop when asked")
	}
	// Let go of, it is still reaped (no zombie) once it exits.
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) != syscall.ESRCH {
		if time.Now().After(deadline) {
			t.Fatal("the persistent worker was never reaped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(s)
}

// A worker that falls silent past its lease while Close waits for its
// exit is lost and killed; Close has closed it all the same, and a call
// made after Close fails with ErrClosed, not with the loss.
func TestCallAfterCloseOfLostWorker(t *testing.T) {
	m := newMaster(t)
	ctx := context.Background()
	const delay = 30 * time.Second
	s, err := m.Spawn(ctx, master.WithEnv(exitDelayEnv+"="+delay.String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Terminate() })
	if _, err := master.Invoke(ctx, s, Sum, []int{1}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > delay/2 {
		t.Fatalf("Close waited %s for a worker silent for %s: its lease did not lapse", d, delay)
	}
	_, err = master.Invoke(ctx, s, Sum, []int{1})
	if !errors.Is(err, bus.ErrClosed) || errors.Is(err, bus.ErrWorkerLost) {
		t.Fatalf("call after close: err = %v, want ErrClosed", err)
	}
}

// A worker that exited is not lost for the heartbeats it no longer
// answers while the master reaps it: its calls fail with its exit
// status, even when reaping outlasts the lease (here, a second waiting
// for output pipes another process still holds).
func TestExitedWorkerNotLeased(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := master.New(ctx, master.WithLease(700*time.Millisecond, 50*time.Millisecond)) // under the second reaping waits
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s := spawn(t, m)
	_, err = master.Invoke(ctx, s, ExitLeavingOutput, 7)
	if !errors.Is(err, bus.ErrWorkerLost) || !strings.Contains(err.Error(), "exit status 7") {
		t.Fatalf("err = %v, want ErrWorkerLost with exit status 7", err)
	}
}
