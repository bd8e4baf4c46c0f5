package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/embedded"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/worker"
)

// envHelper makes the test binary, run again as a child, a worker binary
// whose main is TestHelperWorkerMain.
const envHelper = "WORKER_TEST_HELPER"

var (
	// worker_test.sleep reports its start (bus.Progress), for a test to
	// wait on, then sleeps d.
	_ = bus.Register("worker_test.sleep", func(ctx context.Context, d time.Duration) (string, error) {
		bus.Progress(ctx, "started")
		select {
		case <-time.After(d):
			return "slept", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	// worker_test.env tells whether the worker's environment still holds
	// its configuration, which Main must remove for the worker's own
	// children.
	_ = bus.Register("worker_test.env", func(ctx context.Context, _ struct{}) (bool, error) {
		_, ok := os.LookupEnv(wire.EnvWorker)
		return ok, nil
	})
)

// TestHelperWorkerMain is no test of its own: it is the main of the worker
// processes the tests below start.
func TestHelperWorkerMain(t *testing.T) {
	if os.Getenv(envHelper) != "1" {
		t.Skip("the main of the worker processes of TestMain*")
	}
	if !worker.Main() {
		t.Fatal("worker.Main returned false in a process spawned as a worker")
	}
}

func TestMainNotAWorker(t *testing.T) {
	t.Setenv(wire.EnvWorker, "") // restored after the test
	os.Unsetenv(wire.EnvWorker)
	if worker.Main() {
		t.Fatal("worker.Main returned true in a process that is no worker")
	}
}

// child is a worker process running TestHelperWorkerMain.
type child struct {
	cmd    *exec.Cmd
	out    bytes.Buffer  // stdout and stderr; read it once exited
	exited chan struct{} // closed once the process is reaped
	err    error         // Wait's, once exited
}

func startChild(t *testing.T, env string) *child {
	t.Helper()
	c := &child{exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperWorkerMain$", "-test.count=1", "-test.v")
	c.cmd.Env = append(os.Environ(), envHelper+"=1", env)
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.kill)
	return c
}

// kill kills the process unless it has exited, and reaps it.
func (c *child) kill() {
	select {
	case <-c.exited:
	default:
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// wait waits for the process to exit and returns its exit status.
func (c *child) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		c.kill()
		t.Fatalf("the worker process did not exit; its output:\n%s", c.out.String())
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		return ee.ExitCode()
	}
	if c.err != nil {
		t.Fatal(c.err)
	}
	return 0
}

// masterSide is the server and connection a child joins.
type masterSide struct {
	srv   *embedded.Server
	nc    *nats.Conn
	hello chan *nats.Msg
	cfg   wire.WorkerConfig
}

func newMasterSide(t *testing.T) *masterSide {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("worker_test process master")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	m := &masterSide{srv: srv, nc: nc}
	m.cfg = wire.WorkerConfig{URL: srv.URL(), Token: srv.Token(), Worker: wire.NewID("wp"), Master: "m-proc", Version: wire.Version()}
	m.cfg.Hello = wire.HelloSubject(m.cfg.Master, m.cfg.Worker)
	m.hello = make(chan *nats.Msg, 8)
	if _, err := nc.ChanSubscribe(m.cfg.Hello, m.hello); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *masterSide) waitHello(t *testing.T, c *child) *wire.Hello {
	t.Helper()
	var msg *nats.Msg
	select {
	case msg = <-m.hello:
	case <-c.exited:
		// A worker that cannot serve says hello, then exits: the hello
		// may still be on its way.
		select {
		case msg = <-m.hello:
		case <-time.After(2 * time.Second):
		}
	case <-time.After(30 * time.Second):
	}
	if msg == nil {
		c.kill()
		t.Fatalf("no hello; the worker's output:\n%s", c.out.String())
	}
	var h wire.Hello
	if err := codec.Unmarshal(msg.Data, &h); err != nil {
		t.Fatalf("the hello does not decode: %v", err)
	}
	return &h
}

func (m *masterSide) call(t *testing.T, c wire.Call, arg any) ([]byte, *bus.RemoteError) {
	t.Helper()
	c.Master = m.cfg.Master
	msg, err := m.nc.Request(wire.CallSubject(m.cfg.Worker), encodeCall(t, c, arg), timeout)
	if err != nil {
		t.Fatalf("call %s: %v", c.Function, err)
	}
	_, raw, re, err := wire.DecodeReply(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	return raw, re
}

// TestMainServes runs a worker process through its life: hello, calls,
// and each of the ways it ends.
func TestMainServes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, m *masterSide, c *child)
	}{
		{"closed by its master", func(t *testing.T, m *masterSide, c *child) {
			raw, re := m.call(t, wire.Call{Kind: wire.KindClose, ID: 0}, nil)
			if re != nil || len(raw) == 0 {
				t.Fatalf("close reply %v", re)
			}
		}},
		{"SIGTERM, after its running call", func(t *testing.T, m *masterSide, c *child) {
			in := make(chan *nats.Msg, 1)
			sub, err := m.nc.ChanSubscribe(m.cfg.Hello+".reply", in)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			data := encodeCall(t, wire.Call{Kind: wire.KindCall, Master: m.cfg.Master, ID: 9, Function: "worker_test.sleep"}, 300*time.Millisecond)
			if err := m.nc.PublishRequest(wire.CallSubject(m.cfg.Worker), m.cfg.Hello+".reply", data); err != nil {
				t.Fatal(err)
			}
			m.nc.Flush()
			// The call runs once its start's progress report comes.
			select {
			case msg := <-in:
				if _, st, _, re, err := wire.DecodeReplyStatus(msg.Data); err != nil || re != nil || st != wire.StatusProgress {
					t.Fatalf("the call's first message: status %d, %v, %v; want its start's progress", st, re, err)
				}
			case <-time.After(timeout):
				t.Fatal("the call never started")
			}
			if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case msg := <-in:
				_, raw, re, err := wire.DecodeReply(msg.Data)
				var s string
				if err == nil && re == nil {
					err = codec.Unmarshal(raw, &s)
				}
				if err != nil || re != nil || s != "slept" {
					t.Fatalf("the running call replied %q, %v, %v, want \"slept\"", s, re, err)
				}
			case <-time.After(timeout):
				t.Fatal("the running call never replied")
			}
		}},
		{"its server goes away", func(t *testing.T, m *masterSide, c *child) {
			m.nc.Close()
			m.srv.Shutdown()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMasterSide(t)
			c := startChild(t, m.cfg.Env())
			h := m.waitHello(t, c)
			if err := h.Check(); err != nil {
				t.Fatalf("hello: %v", err)
			}
			if h.Worker != m.cfg.Worker || h.PID != c.cmd.Process.Pid || !slices.Contains(h.Functions, "worker_test.echo") {
				t.Errorf("hello %+v", h)
			}
			raw, re := m.call(t, wire.Call{ID: 1, Function: "worker_test.echo"}, "from the child")
			if got := decode[string](t, raw, re); got != "from the child" {
				t.Errorf("echo = %q", got)
			}
			raw, re = m.call(t, wire.Call{ID: 2, Function: "worker_test.env"}, struct{}{})
			if decode[bool](t, raw, re) {
				t.Errorf("the worker's environment still holds $%s: its own children would take themselves for workers", wire.EnvWorker)
			}
			tc.end(t, m, c)
			if code := c.wait(t); code != 0 {
				t.Fatalf("the worker exited with status %d; its output:\n%s", code, c.out.String())
			}
			if !strings.Contains(c.out.String(), "PASS") {
				t.Errorf("worker.Main did not return true; output:\n%s", c.out.String())
			}
		})
	}
}

// TestMainRefuses starts worker processes that cannot serve: they exit
// with status 2 and say why, to the master in their hello when they can.
func TestMainRefuses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, tc := range []struct {
		name      string
		env       func(cfg wire.WorkerConfig) string
		wantHello bool
		subs      []string
	}{
		{"master of another protocol", func(cfg wire.WorkerConfig) string {
			cfg.Version = wire.Version() + 1
			return cfg.Env()
		}, true, []string{fmt.Sprintf("master speaks protocol %d", wire.Version()+1), fmt.Sprintf("this worker binary speaks %d", wire.Version())}},
		{"malformed configuration", func(wire.WorkerConfig) string {
			return wire.EnvWorker + "={not json"
		}, false, []string{"not a worker configuration"}},
		{"incomplete configuration", func(cfg wire.WorkerConfig) string {
			cfg.URL = ""
			return cfg.Env()
		}, false, []string{"lacks url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMasterSide(t)
			c := startChild(t, tc.env(m.cfg))
			if tc.wantHello {
				h := m.waitHello(t, c)
				if h.Worker != m.cfg.Worker || h.Error == "" {
					t.Fatalf("hello %+v, want one that says why", h)
				}
				err := h.Check()
				if err == nil {
					t.Fatal("hello.Check() = nil for a worker that cannot serve")
				}
				for _, s := range tc.subs {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("hello error %q does not contain %q", err, s)
					}
				}
			}
			if code := c.wait(t); code != 2 {
				t.Fatalf("exit status %d, want 2; output:\n%s", code, c.out.String())
			}
			out := c.out.String()
			if !strings.Contains(out, "processional worker: ") {
				t.Errorf("output does not say why:\n%s", out)
			}
			for _, s := range tc.subs {
				if !strings.Contains(out, s) {
					t.Errorf("output does not contain %q:\n%s", s, out)
				}
			}
			if !tc.wantHello {
				select {
				case msg := <-m.hello:
					t.Errorf("unexpected hello %q", msg.Data)
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
}
