package bus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

// The functions the tests below call on a real worker process: the test
// binary, spawned (TestMain calls worker.Main).
var (
	// remoteSentinel returns the standard sentinel of that index in
	// stdSentinels, wrapped when asked.
	remoteSentinel = bus.Register("bus_test.remote.sentinel", func(ctx context.Context, a struct {
		Index int
		Wrap  bool
	}) (struct{}, error) {
		err := stdSentinels[a.Index]
		if a.Wrap {
			err = fmt.Errorf("doing %d: %w", a.Index, err)
		}
		return struct{}{}, err
	})
	// remoteOS returns the error a real operation of the os or net
	// package gives on the worker.
	remoteOS = bus.Register("bus_test.remote.os", func(ctx context.Context, a struct{ Op, Path string }) (struct{}, error) {
		switch a.Op {
		case "open":
			f, err := os.Open(a.Path)
			if err == nil {
				f.Close()
			}
			return struct{}{}, err
		case "mkdir":
			return struct{}{}, os.Mkdir(a.Path, 0o700)
		case "read closed":
			f, err := os.Open(a.Path)
			if err != nil {
				return struct{}{}, err
			}
			f.Close()
			_, err = f.Read(make([]byte, 1))
			return struct{}{}, err
		case "read past the end":
			f, err := os.Open(a.Path)
			if err != nil {
				return struct{}{}, err
			}
			defer f.Close()
			_, err = f.Read(make([]byte, 1))
			return struct{}{}, err
		case "accept past the deadline", "accept closed":
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return struct{}{}, err
			}
			defer l.Close()
			if a.Op == "accept closed" {
				l.Close()
			} else {
				l.(*net.TCPListener).SetDeadline(time.Now().Add(-time.Second))
			}
			_, err = l.Accept()
			return struct{}{}, err
		case "own cancel":
			inner, cancel := context.WithCancel(ctx)
			cancel()
			<-inner.Done()
			return struct{}{}, fmt.Errorf("waiting: %w", inner.Err())
		case "own deadline":
			inner, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
			defer cancel()
			<-inner.Done()
			return struct{}{}, fmt.Errorf("waiting: %w", inner.Err())
		}
		return struct{}{}, fmt.Errorf("no operation %q", a.Op)
	})
	// remoteBlock waits for its context's end and returns its error.
	remoteBlock = bus.Register("bus_test.remote.block", func(ctx context.Context, _ struct{}) (struct{}, error) {
		<-ctx.Done()
		return struct{}{}, ctx.Err()
	})
	// remotePanic panics with msg, from a function of its own, so that its
	// frame is on the worker's stack.
	remotePanic = bus.Register("bus_test.remote.panic", func(ctx context.Context, msg string) (struct{}, error) {
		remotePanicker(msg)
		return struct{}{}, nil
	})
)

func remotePanicker(msg string) { panic(errors.New(msg)) }

// spawnWorker starts a worker process on a master of its own (with its
// embedded NATS server) for the test, and ends both with the test. Its
// calls go by NATS, unless lane is true: then by the lane to the spawned
// worker, the default.
func spawnWorker(t *testing.T, lane ...bool) *master.Slave {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := master.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	opts := []master.SpawnOption{master.WithID("errors-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))}
	if len(lane) == 0 || !lane[0] {
		opts = append(opts, master.WithoutLane())
	}
	s, err := m.Spawn(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Terminate() })
	return s
}

// callCtx bounds a test's calls: a worker that never answers fails the
// test rather than hanging it.
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// wantRemote fails t unless err came from the worker as a *RemoteError.
func wantRemote(t *testing.T, err error) *bus.RemoteError {
	t.Helper()
	var re *bus.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v (%T), want a *bus.RemoteError", err, err)
	}
	return re
}

func TestRemoteStandardSentinelsOnAWorker(t *testing.T) {
	ctx := callCtx(t)
	s := spawnWorker(t)
	for i, target := range stdSentinels {
		for _, wrap := range []bool{false, true} {
			_, err := master.Invoke(ctx, s, remoteSentinel, struct {
				Index int
				Wrap  bool
			}{i, wrap})
			re := wantRemote(t, err)
			if !errors.Is(err, target) {
				t.Errorf("%v (wrapped %v) lost across the wire: %v, sentinels %q", target, wrap, err, re.Sentinels)
			}
		}
	}
}

func TestRemoteOSErrorsOnAWorker(t *testing.T) {
	ctx := callCtx(t)
	s := spawnWorker(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		op, path string
		typ      string // the remote error's Go type
		is       []error
		unixIs   []error // where errnos are Unix's
	}{
		{"open", missing, "*fs.PathError", []error{fs.ErrNotExist, os.ErrNotExist}, []error{syscall.ENOENT}},
		{"mkdir", dir, "*fs.PathError", []error{fs.ErrExist, os.ErrExist}, []error{syscall.EEXIST}},
		{"read closed", empty, "*fs.PathError", []error{fs.ErrClosed, os.ErrClosed}, nil},
		{"read past the end", empty, "*errors.errorString", []error{io.EOF}, nil},
		{"accept past the deadline", "", "*net.OpError", []error{os.ErrDeadlineExceeded}, nil},
		{"accept closed", "", "*net.OpError", []error{net.ErrClosed}, nil},
		{"own cancel", "", "*fmt.wrapError", []error{context.Canceled}, nil},
		{"own deadline", "", "*fmt.wrapError", []error{context.DeadlineExceeded}, nil},
	} {
		t.Run(tc.op, func(t *testing.T) {
			_, err := master.Invoke(ctx, s, remoteOS, struct{ Op, Path string }{tc.op, tc.path})
			re := wantRemote(t, err)
			if re.Type != tc.typ {
				t.Errorf("type %q, want %q (%v)", re.Type, tc.typ, err)
			}
			is := tc.is
			if runtime.GOOS != "windows" {
				is = append(is, tc.unixIs...)
			}
			for _, target := range is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false; sentinels %q", err, target, re.Sentinels)
				}
			}
			// Wrapped again on the master's side, still.
			if !errors.Is(fmt.Errorf("loading: %w", err), is[0]) {
				t.Errorf("wrapped at the master, %v lost %v", err, is[0])
			}
		})
	}
	// The call itself did not end for the master: a remote context error is
	// the function's, and the call's own context is fine.
	if ctx.Err() != nil {
		t.Fatalf("the test's context ended: %v", ctx.Err())
	}
}

// TestRemoteContextErrorIsNotTheCalls: a context error the function
// returned on its own arrives as a *RemoteError that Is context.Canceled,
// while a call the master cancels ends with the master's own bare
// context error, as before.
func TestRemoteContextErrorIsNotTheCalls(t *testing.T) {
	ctx := callCtx(t)
	s := spawnWorker(t)

	_, err := master.Invoke(ctx, s, remoteOS, struct{ Op, Path string }{"own cancel", ""})
	if wantRemote(t, err); !errors.Is(err, context.Canceled) {
		t.Fatalf("remote own cancel: %v, want a *RemoteError that Is context.Canceled", err)
	}

	task := master.Schedule(ctx, s, remoteBlock, struct{}{})
	task.Cancel()
	if _, err := task.Wait(ctx); err != context.Canceled {
		t.Fatalf("a cancelled call: %v (%T), want context.Canceled itself", err, err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	task = master.Schedule(cancelled, s, remoteBlock, struct{}{})
	cancel()
	if _, err := task.Wait(ctx); err != context.Canceled {
		t.Fatalf("a call whose context was cancelled: %v (%T), want context.Canceled itself", err, err)
	}

	// The deadline travels with the call: the function's context ends on
	// the worker at the same time as the call's on the master, and
	// whichever end is first decides; either way errors.Is holds.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = master.Invoke(short, s, remoteBlock, struct{}{})
	var re *bus.RemoteError
	switch {
	case err == context.DeadlineExceeded:
	case errors.As(err, &re) && re.Function == "bus_test.remote.block" && errors.Is(err, context.DeadlineExceeded):
	default:
		t.Fatalf("a call past its deadline: %v (%T), want context.DeadlineExceeded, the master's or the function's", err, err)
	}

	// The worker still serves.
	if _, err := master.Invoke(ctx, s, remoteSentinel, struct {
		Index int
		Wrap  bool
	}{0, false}); !errors.Is(err, stdSentinels[0]) {
		t.Fatalf("after the cancellations: %v", err)
	}
}

func TestRemotePanicFormatAndLog(t *testing.T) {
	t.Run("by NATS", func(t *testing.T) { testRemotePanicFormatAndLog(t, false) })
	t.Run("by the lane", func(t *testing.T) { testRemotePanicFormatAndLog(t, true) })
}

func testRemotePanicFormatAndLog(t *testing.T, lane bool) {
	ctx := callCtx(t)
	s := spawnWorker(t, lane)
	_, err := master.Invoke(ctx, s, remotePanic, "boom")
	re := wantRemote(t, err)
	if !errors.Is(err, bus.ErrPanic) {
		t.Fatalf("err = %v, want ErrPanic", err)
	}
	msg := err.Error()
	wantSubstrings(t, "message", msg, s.ID(), "bus_test.remote.panic", "panic: boom")

	if got := fmt.Sprintf("%v", err); got != msg {
		t.Errorf("%%v = %q, want %q", got, msg)
	}
	if got := fmt.Sprintf("%s", err); got != msg {
		t.Errorf("%%s = %q, want %q", got, msg)
	}
	if got, want := fmt.Sprintf("%q", err), fmt.Sprintf("%q", msg); got != want {
		t.Errorf("%%q = %s, want %s", got, want)
	}
	plus := fmt.Sprintf("%+v", err)
	head, stack, ok := strings.Cut(plus, "\n\n")
	if !ok || head != msg {
		t.Fatalf("%%+v = %q, want the message, a blank line, the stack", plus)
	}
	// The worker's stack, from the frame that panicked.
	if !strings.HasPrefix(stack, "goroutine ") || !strings.Contains(strings.SplitN(stack, "\n", 3)[1], "bus_test.remotePanicker(") {
		t.Errorf("%%+v's stack does not start at the panic:\n%s", stack)
	}

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Error("call failed", "err", err)
	var rec struct {
		Msg string `json:"msg"`
		Err struct {
			Message   string   `json:"message"`
			Type      string   `json:"type"`
			Worker    string   `json:"worker"`
			Function  string   `json:"function"`
			Sentinels []string `json:"sentinels"`
			Panic     string   `json:"panic"`
			Stack     string   `json:"stack"`
		} `json:"err"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	e := rec.Err
	if rec.Msg != "call failed" || e.Message != "panic: boom" || e.Type != "*bus.PanicError" ||
		e.Worker != s.ID() || e.Function != "bus_test.remote.panic" || e.Panic != "boom" || e.Stack != re.Stack {
		t.Errorf("logged %s", buf.String())
	}
	if len(e.Sentinels) != 1 || e.Sentinels[0] != "bus.ErrPanic" {
		t.Errorf("logged sentinels %q, want [bus.ErrPanic]", e.Sentinels)
	}
}
