package master_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/embedded"
	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/master"
	"github.com/processional/processional/worker"
)

var ErrNegative = bus.RegisterError("master_test.ErrNegative", errors.New("negative input"))

var (
	Sum = bus.Register("test.sum", func(ctx context.Context, xs []int) (int, error) {
		n := 0
		for _, x := range xs {
			if x < 0 {
				return 0, fmt.Errorf("item %d: %w", x, ErrNegative)
			}
			n += x
		}
		return n, nil
	})
	Sleep = bus.Register("test.sleep", func(ctx context.Context, d time.Duration) (string, error) {
		select {
		case <-time.After(d):
			return "slept", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	Panic = bus.Register("test.panic", func(ctx context.Context, msg string) (int, error) {
		panic(msg)
	})
	Append = bus.Register("test.append", func(ctx context.Context, x int) ([]int, error) {
		orderMu.Lock()
		defer orderMu.Unlock()
		order = append(order, x)
		return append([]int(nil), order...), nil
	})
	Exit = bus.Register("test.exit", func(ctx context.Context, code int) (int, error) {
		os.Exit(code)
		return 0, nil
	})
	// ExitLeavingOutput exits with code, leaving its output pipes held for
	// two seconds by a process of another session, which the master's
	// kill of the worker's group misses.
	ExitLeavingOutput = bus.Register("test.exitLeavingOutput", func(ctx context.Context, code int) (int, error) {
		cmd := exec.Command("sleep", "2")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		os.Exit(code)
		return 0, nil
	})
	Grandchild = bus.Register("test.grandchild", func(ctx context.Context, _ struct{}) (int, error) {
		cmd := exec.Command("sleep", "1000")
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	})
	Print = bus.Register("test.print", func(ctx context.Context, line string) (int, error) {
		fmt.Println(line)
		fmt.Fprint(os.Stderr, "a last line with no newline")
		return 0, nil
	})
	Deadline = bus.Register("test.deadline", func(ctx context.Context, _ struct{}) (time.Duration, error) {
		d, ok := ctx.Deadline()
		if !ok {
			return -1, nil
		}
		return time.Until(d), nil
	})
)

var (
	orderMu sync.Mutex
	order   []int
)

// exitDelayEnv makes a worker of these tests sit that long, silent,
// between the end of its serving and its exit.
const exitDelayEnv = "MASTER_TEST_EXIT_DELAY"

func TestMain(m *testing.M) {
	if worker.Main() {
		if d, err := time.ParseDuration(os.Getenv(exitDelayEnv)); err == nil {
			time.Sleep(d)
		}
		return
	}
	proctest.NoRaceExitSleep()
	goleak.VerifyTestMain(m)
}

func spawn(t *testing.T, m *master.Master) *master.Slave {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := m.Spawn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Terminate() })
	return s
}

func newMaster(t *testing.T) *master.Master {
	t.Helper()
	m, err := master.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

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
	if err := syscall.Kill(s.PID(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("worker pid %d still exists after Close: %v", s.PID(), err)
	}
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

func TestWorkerOutputIsPrefixed(t *testing.T) {
	m := newMaster(t)
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := m.Spawn(ctx, master.WithID("printer"), master.WithOutput(&stdout, &stderr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := master.Invoke(ctx, s, Print, "hello from the worker"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got := stdout.String(); !strings.Contains(got, "[printer] hello from the worker\n") {
		t.Errorf("stdout = %q, want the line prefixed with the worker id", got)
	}
	if got := stderr.String(); !strings.Contains(got, "[printer] a last line with no newline\n") {
		t.Errorf("stderr = %q, want the unterminated last line, prefixed", got)
	}
}

func TestBadOptions(t *testing.T) {
	m := newMaster(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opt  master.SpawnOption
	}{
		{"empty binary", master.WithBinary("")},
		{"bad id", master.WithID("has.a.dot")},
		{"empty id", master.WithID("")},
		{"zero start timeout", master.WithStartTimeout(0)},
		{"env entry without =", master.WithEnv("NOEQUALS")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.Spawn(ctx, tc.opt); !errors.Is(err, master.ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
	if _, err := master.New(ctx, master.WithNATS("", "")); !errors.Is(err, master.ErrConfig) {
		t.Fatalf("WithNATS(\"\"): err = %v, want ErrConfig", err)
	}
	if _, err := m.Spawn(ctx, master.WithBinary("/nonexistent/worker")); !errors.Is(err, master.ErrSpawn) {
		t.Fatalf("missing binary: err = %v, want ErrSpawn", err)
	}
}

func TestExternalServerAndClosedMaster(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ctx := context.Background()
	m, err := master.New(ctx, master.WithNATS(srv.URL(), srv.Token()))
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Spawn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := master.Invoke(ctx, s, Sum, []int{20, 22}); n != 42 || err != nil {
		t.Fatalf("through an external server: %d, %v", n, err)
	}
	// Closing the master closes its slaves; both are then refused.
	m.Close()
	if !proctest.Gone(s.PID(), 5*time.Second) {
		t.Fatalf("worker %d outlived its master's Close", s.PID())
	}
	if _, err := master.Invoke(ctx, s, Sum, nil); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("call after the master closed: %v, want ErrClosed", err)
	}
	if _, err := m.Spawn(ctx); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Spawn on a closed master: %v, want ErrClosed", err)
	}
	m.Close() // idempotent
	if _, err := master.New(ctx, master.WithNATS(srv.URL(), "wrong-token")); !errors.Is(err, master.ErrConnect) || !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("wrong token: %v, want ErrConnect wrapping nats.ErrAuthorization", err)
	}
}

func TestSharedMaster(t *testing.T) {
	ctx := context.Background()
	a, err := master.Spawn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := master.Spawn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Both share the process's master; it stops with the last slave
	// (goleak checks), and the next Spawn starts a new one.
	if a.Master() != b.Master() {
		t.Fatal("two package-level spawns got different masters")
	}
	first := a.Master()
	for _, s := range []*master.Slave{a, b} {
		if n, err := master.Invoke(ctx, s, Sum, []int{1, 1}); n != 2 || err != nil {
			t.Fatalf("%v: %d, %v", s, n, err)
		}
	}
	a.Close()
	if n, err := master.Invoke(ctx, b, Sum, []int{2, 2}); n != 4 || err != nil {
		t.Fatalf("after the first slave closed: %d, %v", n, err)
	}
	b.Close()
	c, err := master.Spawn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Master() == first {
		t.Fatal("the shared master outlived its last slave")
	}
	if _, err := first.Spawn(ctx); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("the old shared master still spawns: %v", err)
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

func TestSpawnRacesClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range 3 {
		m, err := master.New(ctx)
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				s, err := m.Spawn(ctx)
				if err == nil {
					// Spawned before Close took it: Close closes it.
					<-s.Exited()
				}
				errs <- err
			}()
		}
		time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
		m.Close()
		for range 2 {
			if err := <-errs; err != nil && !errors.Is(err, bus.ErrClosed) {
				t.Fatalf("Spawn during Close: %v, want success or ErrClosed", err)
			}
		}
	}
}

func TestBadExecutors(t *testing.T) {
	var nilSlave *master.Slave
	closed := master.NewThread()
	closed.Close()
	for _, tc := range []struct {
		name string
		ex   master.Executor
		kind func(master.Executor) error
		want error
	}{
		{"nil slave", nilSlave, invokeOn, master.ErrBadCall},
		{"zero slave", &master.Slave{}, invokeOn, master.ErrBadCall},
		{"zero slave thread", &master.SlaveThread{}, invokeOn, master.ErrBadCall},
		{"nil slave thread", (*master.SlaveThread)(nil), invokeOn, master.ErrBadCall},
		{"closed slave thread", closed, invokeOn, bus.ErrClosed},
		{"Thread on a closed slave thread", closed, threadOn, bus.ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.kind(tc.ex); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if err := (&master.Slave{}).Close(); !errors.Is(err, master.ErrBadCall) {
		t.Fatalf("Close of a zero Slave: %v", err)
	}
	if err := (&master.SlaveThread{}).Close(); err != nil {
		t.Fatalf("Close of a zero SlaveThread: %v", err)
	}
}

func invokeOn(ex master.Executor) error {
	_, err := master.Invoke(context.Background(), ex, Sum, []int{1})
	return err
}

func threadOn(ex master.Executor) error {
	_, err := master.Thread(context.Background(), ex, Sum, []int{1}).Wait(context.Background())
	return err
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

func TestLeaseOption(t *testing.T) {
	ctx := context.Background()
	for _, tc := range [][2]time.Duration{{0, 0}, {time.Second, 0}, {time.Second, time.Second}, {time.Second, 2 * time.Second}, {-time.Second, time.Millisecond}} {
		if _, err := master.New(ctx, master.WithLease(tc[0], tc[1])); !errors.Is(err, master.ErrConfig) {
			t.Errorf("WithLease(%s, %s): %v, want ErrConfig", tc[0], tc[1], err)
		}
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
	m := newMaster(t)
	s := spawn(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	slow := master.Schedule(ctx, s, Sleep, master.DefaultLease*3/2) // past a lease
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
	m, err := master.New(ctx, master.WithNATS(srv.URL(), srv.Token()), master.WithLease(500*time.Millisecond, 50*time.Millisecond))
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
