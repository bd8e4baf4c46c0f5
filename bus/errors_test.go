package bus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
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
		{"duplicate of a test sentinel", func() { bus.RegisterError("bus_test.errEmpty", errEmpty) }, `"bus_test.errEmpty" registered twice`},
		{"duplicate of context.Canceled", func() { bus.RegisterError("context.Canceled", context.Canceled) }, "registered twice"},
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
