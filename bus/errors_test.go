package bus_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
)

var (
	errEmpty    = bus.RegisterError("bus_test.errEmpty", errors.New("bus_test: empty input"))
	errTooLarge = bus.RegisterError("bus_test.errTooLarge", errors.New("bus_test: too large"))
	// errLocal is not registered: it cannot survive the trip.
	errLocal = errors.New("bus_test: local only")
)

type customError struct{ Code int }

func (e *customError) Error() string { return fmt.Sprintf("custom error %d", e.Code) }

// travel sends err the way a worker does, and returns what the master
// reads: through Marshal and Unmarshal, and through an error reply.
func travel(t *testing.T, err error) []*bus.RemoteError {
	t.Helper()
	re := wire.NewRemoteError("w-1", "bus_test.fn", err)
	data, merr := codec.Marshal(re)
	if merr != nil {
		t.Fatal(merr)
	}
	var back bus.RemoteError
	if err := codec.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	_, _, fromReply, derr := wire.DecodeReply(wire.AppendErrorReply(nil, 0, re))
	if derr != nil || fromReply == nil {
		t.Fatalf("DecodeReply of an error reply = %v, %v", fromReply, derr)
	}
	for _, got := range []*bus.RemoteError{&back, fromReply} {
		if !reflect.DeepEqual(got, re) {
			t.Fatalf("after the trip: %+v, want %+v", got, re)
		}
	}
	return []*bus.RemoteError{re, &back, fromReply}
}

func TestRemoteErrorSentinels(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		is      []error // errors.Is holds on the master's side
		isNot   []error
		typ     string
		message string
	}{
		{"plain", errors.New("boom"), nil,
			[]error{errEmpty, bus.ErrPanic, errLocal}, "*errors.errorString", "boom"},
		{"registered sentinel", errEmpty, []error{errEmpty},
			[]error{errTooLarge, bus.ErrPanic}, "*errors.errorString", "bus_test: empty input"},
		{"wrapped sentinel", fmt.Errorf("x: %w", errEmpty), []error{errEmpty},
			[]error{errTooLarge}, "*fmt.wrapError", "x: bus_test: empty input"},
		{"doubly wrapped", fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", errTooLarge)), []error{errTooLarge},
			[]error{errEmpty}, "*fmt.wrapError", "outer: inner: bus_test: too large"},
		{"two sentinels in one Errorf", fmt.Errorf("%w and %w", errEmpty, errTooLarge), []error{errEmpty, errTooLarge},
			[]error{bus.ErrClosed}, "*fmt.wrapErrors", "bus_test: empty input and bus_test: too large"},
		{"joined", errors.Join(errEmpty, bus.ErrClosed), []error{errEmpty, bus.ErrClosed},
			[]error{errTooLarge}, "*errors.joinError", "bus_test: empty input\nprocessional: executor closed"},
		{"unregistered sentinel", fmt.Errorf("x: %w", errLocal), nil,
			[]error{errLocal, errEmpty}, "*fmt.wrapError", "x: bus_test: local only"},
		{"custom type", &customError{7}, nil,
			[]error{errEmpty}, "*bus_test.customError", "custom error 7"},
		{"bus sentinel", fmt.Errorf("%w: worker w-1 is closing", bus.ErrClosed), []error{bus.ErrClosed},
			[]error{bus.ErrWorkerLost}, "*fmt.wrapError", "processional: executor closed: worker w-1 is closing"},
		{"every bus sentinel", errors.Join(bus.ErrUnknownFunction, bus.ErrArgumentType, bus.ErrResultType, bus.ErrBadPayload,
			bus.ErrProtocolVersion, bus.ErrEncode, bus.ErrPanic, bus.ErrClosed, bus.ErrWorkerLost),
			[]error{bus.ErrUnknownFunction, bus.ErrArgumentType, bus.ErrResultType, bus.ErrBadPayload,
				bus.ErrProtocolVersion, bus.ErrEncode, bus.ErrPanic, bus.ErrClosed, bus.ErrWorkerLost},
			[]error{errEmpty}, "*errors.joinError", ""},
		{"context canceled", fmt.Errorf("wait: %w", context.Canceled), []error{context.Canceled},
			[]error{context.DeadlineExceeded}, "*fmt.wrapError", "wait: context canceled"},
		{"deadline exceeded", context.DeadlineExceeded, []error{context.DeadlineExceeded},
			[]error{context.Canceled}, "context.deadlineExceededError", "context deadline exceeded"},
		{"panic", wire.NewPanicError("boom"), []error{bus.ErrPanic},
			[]error{errEmpty}, "*bus.PanicError", "panic: boom"},
		{"panic with a sentinel", wire.NewPanicError(fmt.Errorf("bad: %w", errEmpty)), []error{bus.ErrPanic, errEmpty},
			[]error{errTooLarge}, "*bus.PanicError", "panic: bad: bus_test: empty input"},
		{"wrapped panic", fmt.Errorf("task: %w", wire.NewPanicError(io.EOF)), []error{bus.ErrPanic},
			[]error{errEmpty}, "*fmt.wrapError", "task: panic: EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, re := range travel(t, tc.err) {
				if re.Type != tc.typ || (tc.message != "" && re.Message != tc.message) {
					t.Errorf("%d: type, message = %q, %q, want %q, %q", i, re.Type, re.Message, tc.typ, tc.message)
				}
				if re.Worker != "w-1" || re.Function != "bus_test.fn" {
					t.Errorf("%d: worker, function = %q, %q", i, re.Worker, re.Function)
				}
				for _, target := range tc.is {
					if !errors.Is(re, target) {
						t.Errorf("%d: errors.Is(%v, %v) = false", i, re, target)
					}
					// Wrapped again on the master's side, it still matches.
					if !errors.Is(fmt.Errorf("call: %w", re), target) {
						t.Errorf("%d: errors.Is(wrapped %v, %v) = false", i, re, target)
					}
				}
				for _, target := range tc.isNot {
					if errors.Is(re, target) {
						t.Errorf("%d: errors.Is(%v, %v) = true", i, re, target)
					}
				}
				var rep *bus.RemoteError
				if !errors.As(fmt.Errorf("call: %w", re), &rep) || rep != re {
					t.Errorf("%d: errors.As does not find the *RemoteError", i)
				}
			}
		})
	}
}

func TestRemoteErrorStack(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		wantStack bool
	}{
		{"panic", wire.NewPanicError("boom"), true},
		{"wrapped panic", fmt.Errorf("x: %w", wire.NewPanicError("boom")), true},
		{"error", errors.New("boom"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, re := range travel(t, tc.err) {
				if tc.wantStack {
					wantSubstrings(t, "stack", re.Stack, "goroutine", "TestRemoteErrorStack")
				} else if re.Stack != "" {
					t.Errorf("stack of a plain error = %q", re.Stack)
				}
			}
		})
	}
}

func TestRemoteErrorKeepsOrigin(t *testing.T) {
	inner := wire.NewRemoteError("w-inner", "", fmt.Errorf("deep: %w", errEmpty))
	for _, tc := range []struct {
		name         string
		err          error
		wantFunction string
	}{
		{"bare", inner, "bus_test.outer"},
		{"wrapped", fmt.Errorf("forwarding: %w", inner), "bus_test.outer"},
		{"with a function", wire.NewRemoteError("w-inner", "bus_test.inner", errEmpty), "bus_test.inner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			re := wire.NewRemoteError("w-outer", "bus_test.outer", tc.err)
			if re.Worker != "w-inner" || re.Function != tc.wantFunction {
				t.Errorf("worker, function = %q, %q, want w-inner, %q", re.Worker, re.Function, tc.wantFunction)
			}
			if !errors.Is(re, errEmpty) {
				t.Error("the origin's sentinels were lost")
			}
			if re == inner {
				t.Error("NewRemoteError returned its argument, not a copy")
			}
		})
	}
	if inner.Function != "" {
		t.Errorf("NewRemoteError changed the error it copied: Function = %q", inner.Function)
	}
}

func TestRemoteErrorError(t *testing.T) {
	for _, tc := range []struct {
		name string
		re   bus.RemoteError
		want string
	}{
		{"errors type hidden", bus.RemoteError{Type: "*errors.errorString", Message: "boom", Worker: "w-1", Function: "f"}, "worker w-1: f: boom"},
		{"fmt type hidden", bus.RemoteError{Type: "*fmt.wrapError", Message: "x: boom", Worker: "w-1", Function: "f"}, "worker w-1: f: x: boom"},
		{"other type shown", bus.RemoteError{Type: "*os.PathError", Message: "open x: no such file", Worker: "w-1", Function: "f"}, "worker w-1: f: open x: no such file (*os.PathError)"},
		{"no function", bus.RemoteError{Type: "*bus.PanicError", Message: "panic: x", Worker: "w-1"}, "worker w-1: panic: x"},
		{"no type", bus.RemoteError{Message: "m", Worker: "w"}, "worker w: m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.re.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRemoteErrorUnknownSentinel(t *testing.T) {
	// A sentinel name this binary does not know matches nothing.
	re := &bus.RemoteError{Message: "m", Worker: "w", Sentinels: []string{"other_binary.ErrX", "bus_test.errEmpty"}}
	if !errors.Is(re, errEmpty) {
		t.Error("known sentinel after an unknown one not matched")
	}
	if errors.Is(re, errTooLarge) || errors.Is(re, errLocal) {
		t.Error("matched a sentinel it does not name")
	}
	if errors.Is(&bus.RemoteError{}, errEmpty) {
		t.Error("a remote error with no sentinels matched one")
	}
}

func TestPanicError(t *testing.T) {
	for _, tc := range []struct {
		name      string
		value     any
		msg       string
		unwrapsTo error
	}{
		{"string", "boom", "panic: boom", nil},
		{"int", 42, "panic: 42", nil},
		{"error", io.ErrUnexpectedEOF, "panic: unexpected EOF", io.ErrUnexpectedEOF},
		{"sentinel", fmt.Errorf("x: %w", errEmpty), "panic: x: bus_test: empty input", errEmpty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pe := wire.NewPanicError(tc.value)
			if pe.Error() != tc.msg {
				t.Errorf("Error() = %q, want %q", pe.Error(), tc.msg)
			}
			if !errors.Is(pe, bus.ErrPanic) || !errors.Is(fmt.Errorf("w: %w", pe), bus.ErrPanic) {
				t.Error("errors.Is(ErrPanic) = false")
			}
			if errors.Is(pe, bus.ErrClosed) {
				t.Error("errors.Is(ErrClosed) = true")
			}
			if tc.unwrapsTo != nil && !errors.Is(pe, tc.unwrapsTo) {
				t.Errorf("errors.Is(%v) = false", tc.unwrapsTo)
			}
			if tc.unwrapsTo == nil && pe.Unwrap() != nil {
				t.Errorf("Unwrap() = %v for a value that is no error", pe.Unwrap())
			}
			if pe.Value != tc.value {
				t.Errorf("Value = %v, want %v", pe.Value, tc.value)
			}
			wantSubstrings(t, "stack", pe.Stack, "goroutine", "runtime/debug.Stack", "bus_test.TestPanicError")
		})
	}
	// errors.As sees through to an error panic value.
	pe := wire.NewPanicError(&customError{3})
	var ce *customError
	if !errors.As(pe, &ce) || ce.Code != 3 {
		t.Errorf("errors.As(*customError) = %v", ce)
	}
}

// TestPanicErrorRecovered is the way executors use it: in the deferred
// function that recovered, so that the stack shows where the panic was.
func TestPanicErrorRecovered(t *testing.T) {
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = wire.NewPanicError(r)
			}
		}()
		panicker()
		return nil
	}()
	var pe *bus.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *PanicError", err)
	}
	wantSubstrings(t, "stack", pe.Stack, "bus_test.panicker")
	re := wire.NewRemoteError("w", "f", err)
	if re.Stack != pe.Stack || !errors.Is(re, bus.ErrPanic) {
		t.Errorf("the remote error lost the stack or ErrPanic: %+v", re)
	}
}

func panicker() { panic("from panicker") }

func TestRegisterErrorPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		reg  func()
		want string
	}{
		{"empty name", func() { bus.RegisterError("", errors.New("x")) }, "needs a name"},
		{"nil error", func() { bus.RegisterError("bus_test.nilErr", nil) }, "non-nil error"},
		{"duplicate of a bus sentinel", func() { bus.RegisterError("bus.ErrPanic", errors.New("x")) }, `"bus.ErrPanic" registered twice`},
		{"a test sentinel's name for another error", func() { bus.RegisterError("bus_test.errEmpty", errTooLarge) }, `"bus_test.errEmpty" registered twice, for two errors`},
		{"io.EOF's name for another error", func() { bus.RegisterError("io.EOF", errors.New("EOF")) }, `"io.EOF" registered twice`},
		{"uncomparable", func() { bus.RegisterError("bus_test.uncomparable", sliceError{"a"}) }, "bus_test.sliceError is not comparable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, ok := panicValue(tc.reg)
			if !ok {
				t.Fatal("RegisterError did not panic")
			}
			wantSubstrings(t, "panic", msg, "bus: RegisterError", tc.want)
		})
	}
}

// sliceError is an error type errors.Is cannot compare.
type sliceError []string

func (e sliceError) Error() string { return strings.Join(e, ", ") }

// TestRegisterErrorAgain: the same error under the same name again is a
// no-op, so that a program that registered a standard sentinel itself,
// before processional did, still starts.
func TestRegisterErrorAgain(t *testing.T) {
	for name, err := range map[string]error{
		"bus_test.errEmpty": errEmpty, "context.Canceled": context.Canceled, "io.EOF": io.EOF, "fs.ErrNotExist": fs.ErrNotExist,
	} {
		// Registered already (by processional for the standard ones):
		// this test must not be what registers them.
		if re := wire.NewRemoteError("w", "f", err); !slices.Contains(re.Sentinels, name) {
			t.Fatalf("%q is not registered: sentinels %q", name, re.Sentinels)
		}
		if got, panicked := panicValue(func() { bus.RegisterError(name, err) }); panicked {
			t.Errorf("RegisterError(%q, %v) again panicked: %s", name, err, got)
		}
		re := wire.NewRemoteError("w", "f", fmt.Errorf("x: %w", err))
		if n := strings.Count(strings.Join(re.Sentinels, ","), name); n != 1 || !errors.Is(re, err) {
			t.Errorf("%q: sentinels %q, want it once", name, re.Sentinels)
		}
	}
}

func TestRegisterErrorReturnsItsArgument(t *testing.T) {
	e := errors.New("bus_test: fresh")
	name := "bus_test.fresh." + wire.NewID("e")
	if got := bus.RegisterError(name, e); got != e {
		t.Fatalf("RegisterError returned %v, want its argument", got)
	}
	re := wire.NewRemoteError("w", "f", fmt.Errorf("x: %w", e))
	if !strings.Contains(strings.Join(re.Sentinels, ","), name) || !errors.Is(re, e) {
		t.Errorf("sentinels %q lack %q", re.Sentinels, name)
	}
}

func TestPanicStackStartsAtThePanic(t *testing.T) {
	var pe *bus.PanicError
	func() {
		defer func() { pe = wire.NewPanicError(recover()) }()
		panicHere()
	}()
	lines := strings.Split(pe.Stack, "\n")
	if !strings.HasPrefix(lines[0], "goroutine ") {
		t.Fatalf("stack starts with %q, want the goroutine header", lines[0])
	}
	if !strings.Contains(lines[1], "panicHere") {
		t.Fatalf("first frame %q, want the function that panicked:\n%s", lines[1], pe.Stack)
	}
	if strings.Contains(pe.Stack, "runtime/debug.Stack") || strings.Contains(pe.Stack, "NewPanicError") {
		t.Fatalf("the recovery's own frames are left in:\n%s", pe.Stack)
	}
}

func panicHere() { panic("here") }

// stdSentinels are the standard library's sentinels that hold across the
// wire with no registration by the user.
var stdSentinels = []error{
	io.EOF, io.ErrUnexpectedEOF, io.ErrClosedPipe, io.ErrShortWrite, io.ErrShortBuffer, io.ErrNoProgress,
	fs.ErrInvalid, fs.ErrNotExist, fs.ErrExist, fs.ErrPermission, fs.ErrClosed,
	os.ErrNoDeadline, os.ErrDeadlineExceeded, os.ErrProcessDone,
	net.ErrClosed, errors.ErrUnsupported, context.Canceled, context.DeadlineExceeded,
	syscall.ENOENT, syscall.EEXIST, syscall.EACCES, syscall.EPERM, syscall.ENOTDIR, syscall.EISDIR,
	syscall.ENOTEMPTY, syscall.ENOSPC, syscall.EINVAL, syscall.EINTR, syscall.EAGAIN, syscall.EPIPE,
	syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.ETIMEDOUT, syscall.EADDRINUSE,
}

func TestRemoteErrorStandardSentinels(t *testing.T) {
	for _, target := range stdSentinels {
		for _, err := range []error{target, fmt.Errorf("wrapped: %w", target), errors.Join(errEmpty, target)} {
			for i, re := range travel(t, err) {
				if !errors.Is(re, target) {
					t.Errorf("%d: %v (%T) lost %v: sentinels %q", i, err, err, target, re.Sentinels)
				}
				// Nothing else: each sentinel matches under its own name
				// only, but an errno's portable meaning (ENOENT is
				// fs.ErrNotExist) travels with it, as Errno.Is says.
				for _, other := range stdSentinels {
					if other != target && errors.Is(re, other) != errors.Is(err, other) {
						t.Errorf("%d: %v: errors.Is(%v) = %v across the wire, %v here",
							i, err, other, errors.Is(re, other), errors.Is(err, other))
					}
				}
			}
		}
	}
	// os's errors are fs's values: they match under fs's names.
	re := travel(t, fmt.Errorf("open x: %w", os.ErrNotExist))[2]
	if !errors.Is(re, os.ErrNotExist) || !errors.Is(re, fs.ErrNotExist) || !slices.Contains(re.Sentinels, "fs.ErrNotExist") {
		t.Errorf("os.ErrNotExist across the wire: sentinels %q", re.Sentinels)
	}
}

// TestRemoteErrorSyscallErrors: the errors the os and net packages really
// return, wrapping an errno, keep both the errno (by name) and its
// portable meaning.
func TestRemoteErrorSyscallErrors(t *testing.T) {
	_, openErr := os.Open(filepath.Join(t.TempDir(), "missing"))
	mkdirErr := os.Mkdir(t.TempDir(), 0o700)
	for _, tc := range []struct {
		name string
		err  error
		is   []error
	}{
		{"os.Open of a missing file", openErr, []error{fs.ErrNotExist, syscall.ENOENT}},
		{"os.Mkdir of a directory there", mkdirErr, []error{fs.ErrExist, syscall.EEXIST}},
		{"an os.SyscallError", os.NewSyscallError("connect", syscall.ECONNREFUSED), []error{syscall.ECONNREFUSED}},
		{"a bare errno", syscall.EACCES, []error{syscall.EACCES, fs.ErrPermission}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("no error to send")
			}
			for i, re := range travel(t, tc.err) {
				for _, target := range tc.is {
					if !errors.Is(tc.err, target) {
						t.Fatalf("%v is not %v even here", tc.err, target)
					}
					if !errors.Is(re, target) {
						t.Errorf("%d: %v lost %v: sentinels %q", i, tc.err, target, re.Sentinels)
					}
				}
			}
		})
	}
}

// remoteFrom returns err as the master reads it from a worker's reply.
func remoteFrom(t *testing.T, err error) *bus.RemoteError {
	t.Helper()
	return travel(t, err)[2]
}

func TestErrorFormat(t *testing.T) {
	pe := func() (pe *bus.PanicError) {
		defer func() { pe = wire.NewPanicError(recover()) }()
		panicker()
		return nil
	}()
	for _, tc := range []struct {
		name  string
		err   error
		stack string // what %+v adds
	}{
		{"panic", pe, pe.Stack},
		{"remote panic", remoteFrom(t, pe), pe.Stack},
		{"remote wrapped panic", remoteFrom(t, fmt.Errorf("task: %w", pe)), pe.Stack},
		{"remote error", remoteFrom(t, fmt.Errorf("x: %w", io.EOF)), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.err.Error()
			for _, f := range []struct{ format, want string }{
				{"%v", msg},
				{"%s", msg},
				{"%q", strconv.Quote(msg)},
				{"%x", hex.EncodeToString([]byte(msg))},
				{"%.5s", msg[:5]},
				{"[%-80v]", fmt.Sprintf("[%-80s]", msg)},
				{"%d", "%!d(" + fmt.Sprintf("%T", tc.err) + "=" + msg + ")"},
			} {
				if got := fmt.Sprintf(f.format, tc.err); got != f.want {
					t.Errorf("%s = %q, want %q", f.format, got, f.want)
				}
			}
			want := msg
			if tc.stack != "" {
				want += "\n\n" + strings.TrimSuffix(tc.stack, "\n")
				wantSubstrings(t, "%+v", fmt.Sprintf("%+v", tc.err), "\n\ngoroutine ", "bus_test.panicker(")
			}
			if got := fmt.Sprintf("%+v", tc.err); got != want {
				t.Errorf("%%+v = %q, want %q", got, want)
			}
			// Wrapped on the master's side, it is the wrapper's message.
			if got := fmt.Sprintf("%+v", fmt.Errorf("call: %w", tc.err)); got != "call: "+msg {
				t.Errorf("%%+v of a wrapper = %q", got)
			}
		})
	}
	// %#v gives Go syntax, not the message.
	re := &bus.RemoteError{Type: "*errors.errorString", Message: "boom", Worker: "w", Sentinels: []string{"io.EOF"}}
	if got, want := fmt.Sprintf("%#v", re), `&bus.RemoteError{Type:"*errors.errorString", Message:"boom", Worker:"w", Function:"", Stack:"", Sentinels:[]string{"io.EOF"}, Panic:""}`; got != want {
		t.Errorf("%%#v = %s, want %s", got, want)
	}
	if got, want := fmt.Sprintf("%#v", &bus.PanicError{Value: 7, Stack: "s"}), `&bus.PanicError{Value:7, Stack:"s"}`; got != want {
		t.Errorf("%%#v = %s, want %s", got, want)
	}
	// A nil one prints as fmt prints a nil pointer whose method panics.
	if got := fmt.Sprintf("%v", (*bus.RemoteError)(nil)); got != "<nil>" {
		t.Errorf("%%v of a nil *RemoteError = %q", got)
	}
}

// logJSON logs err through a slog.JSONHandler and returns the decoded
// value of its "err" attribute.
func logJSON(t *testing.T, err error) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Error("failed", "err", err)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("the log line %q does not decode: %v", buf.String(), err)
	}
	group, ok := rec["err"].(map[string]any)
	if !ok {
		t.Fatalf("err is %T in %s, want a group", rec["err"], buf.String())
	}
	return group
}

func TestErrorLogValue(t *testing.T) {
	pe := wire.NewPanicError(fmt.Errorf("bad: %w", errEmpty))
	got := logJSON(t, pe)
	want := map[string]any{"message": "panic: bad: bus_test: empty input", "panic": "bad: bus_test: empty input",
		"panic_type": "*fmt.wrapError", "stack": pe.Stack}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("a *PanicError logs %v, want %v", got, want)
	}

	re := remoteFrom(t, fmt.Errorf("task: %w", pe))
	got = logJSON(t, re)
	want = map[string]any{"message": "task: panic: bad: bus_test: empty input", "type": "*fmt.wrapError",
		"worker": "w-1", "function": "bus_test.fn", "sentinels": []any{"bus.ErrPanic", "bus_test.errEmpty"},
		"panic": "bad: bus_test: empty input", "stack": pe.Stack}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("a remote panic logs %v, want %v", got, want)
	}

	got = logJSON(t, &bus.RemoteError{Message: "m", Worker: "w"})
	if want := map[string]any{"message": "m", "worker": "w"}; !reflect.DeepEqual(got, want) {
		t.Errorf("a bare remote error logs %v, want %v", got, want)
	}
}
