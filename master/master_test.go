package master_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
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
		cmd.SysProcAttr = newSession()
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
			time.Sleep(d) // the slow, silent exit the test exercises
		}
		return
	}
	proctest.NoRaceExitSleep()
	goleak.VerifyTestMain(m)
}

func spawn(t *testing.T, m *master.Master, opts ...master.SpawnOption) *master.Slave {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := m.Spawn(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Terminate() })
	return s
}

func newMaster(t testing.TB) *master.Master {
	t.Helper()
	m, err := master.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
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

func TestExternalServerAndClosedMaster(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ctx := context.Background()
	m, err := master.New(ctx, master.WithNATS(srv.URL()), master.WithToken(srv.Token()))
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
	if _, err := master.New(ctx, master.WithNATS(srv.URL()), master.WithToken("wrong-token")); !errors.Is(err, master.ErrConnect) || !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("wrong token: %v, want ErrConnect wrapping nats.ErrAuthorization", err)
	}
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
		// Close at a random point of the spawns: the race is what is
		// tested, and every outcome is checked.
		time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
		m.Close()
		for range 2 {
			if err := <-errs; err != nil && !errors.Is(err, bus.ErrClosed) {
				t.Fatalf("Spawn during Close: %v, want success or ErrClosed", err)
			}
		}
	}
}
