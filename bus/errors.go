package bus

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/processional/processional/internal/registry"
)

// Sentinel errors of the wire. Each is registered, so that it survives the
// trip from a worker to its master and errors.Is works on the master's side.
var (
	// ErrUnknownFunction: the worker has no function of that name.
	ErrUnknownFunction = registry.ErrUnknownFunction
	// ErrArgumentType: the argument does not decode into the function's
	// argument type.
	ErrArgumentType = registry.ErrArgumentType
	// ErrResultType: the result does not decode into the caller's result type.
	ErrResultType = registry.ErrResultType
	// ErrBadPayload: a message is not a processional envelope.
	ErrBadPayload = registry.ErrBadPayload
	// ErrProtocolVersion: the two ends were built with different protocol
	// versions.
	ErrProtocolVersion = registry.ErrProtocolVersion
	// ErrEncode: a value could not be encoded.
	ErrEncode = registry.ErrEncode
	// ErrPanic: the function panicked; the error carries the panic value
	// and the stack.
	ErrPanic = registry.ErrPanic
	// ErrTooBig: a call or a reply is larger than the largest value the
	// sender or the receiver takes (master.WithMaxValue,
	// worker.WithMaxValue: 1 GiB by default; values past the NATS max
	// payload travel in chunks); the error gives the size and the limit.
	ErrTooBig = registry.ErrTooBig
	// ErrClosed: the executor is closed or closing and takes no new task.
	ErrClosed = registry.ErrClosed
	// ErrNotOwner: a master asked a worker what only its owner may (detach,
	// persist).
	ErrNotOwner = registry.ErrNotOwner
	// ErrLeaseLapsed: the worker heard no heartbeat from the master for a
	// whole lease and dropped the master's calls.
	ErrLeaseLapsed = registry.ErrLeaseLapsed
	// ErrWorkerLost: the worker died or went away before answering.
	ErrWorkerLost = registry.ErrWorkerLost
	// ErrOverloaded: the worker holds as many calls, queued or running, as
	// its limit allows, and refused this one at once rather than queue it
	// without bound; the error names the worker, the count and the limit.
	// The call did not run: it may be sent again later.
	ErrOverloaded = registry.ErrOverloaded
)

// RegisterError registers a sentinel error under a name unique to the
// program, and returns it, so that a package declares its sentinels as
//
//	var ErrEmpty = bus.RegisterError("mypkg.ErrEmpty", errors.New("mypkg: empty input"))
//
// An error returned by a remote function that wraps a registered sentinel
// arrives at the master as a [*RemoteError] for which errors.Is(err, ErrEmpty)
// holds. Both binaries must register the sentinel under the same name.
//
// The standard library's sentinels are registered already, under the
// names Go spells them by: io.EOF, io.ErrUnexpectedEOF, fs.ErrNotExist,
// fs.ErrExist, fs.ErrPermission, fs.ErrClosed (os.ErrNotExist and its kin
// are the same values), os.ErrDeadlineExceeded, net.ErrClosed,
// errors.ErrUnsupported, context.Canceled, context.DeadlineExceeded, a few
// more, and the common syscall errnos (syscall.ENOENT, …, by name, not by
// number); docs/errors.md lists them. Names in those packages' spelling
// ("io.…", "fs.…", "os.…", "net.…", "errors.…", "context.…", "syscall.…")
// and "bus.…" are processional's.
//
// It is meant for package initialisation. It panics on an empty name, a
// nil error, an error whose type is not comparable (errors.Is could not
// match it), or a name registered for two errors; registering the same
// error under the same name again does nothing.
func RegisterError(name string, err error) error { return registry.RegisterError(name, err) }

// PanicError is a recovered panic: its value and the stack of the goroutine
// that panicked. errors.Is(err, ErrPanic) holds for it; when the value is an
// error, errors.Is and errors.As also see through to it.
//
// Printed with %v or %s it gives its message, with %q the message quoted,
// and with %+v the message and the stack, as the runtime prints an
// unrecovered panic. Logged through log/slog it is a group of the
// message, the panic value and the stack (see [PanicError.LogValue]).
type PanicError struct {
	Value any
	Stack string
}

// Format implements fmt.Formatter: %v and %s give the message, %q the
// message quoted, %+v the message, a blank line and the stack, and %#v the
// Go syntax of the struct.
func (e *PanicError) Format(f fmt.State, verb rune) {
	formatError(f, verb, e, e.Stack, func() string { return fmt.Sprintf("&%#v", *e) })
}

// LogValue implements slog.LogValuer: a group of "message" (the error's
// message), "panic" (the value, as %v prints it), "panic_type" (its Go
// type) and "stack".
func (e *PanicError) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("message", e.Error()),
		slog.String("panic", fmt.Sprint(e.Value)),
		slog.String("panic_type", fmt.Sprintf("%T", e.Value)),
		slog.String("stack", e.Stack),
	)
}

// Error gives the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Is reports whether target is ErrPanic.
func (e *PanicError) Is(target error) bool { return target == ErrPanic }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// RemoteError is an error that happened on a worker: the error's Go type
// name, message, the worker and function at fault, and the panic value and
// stack when it was a panic. errors.Is holds for every registered sentinel
// the original error matched (see [RegisterError]), the standard library's
// included.
//
// Printed with %v or %s it gives its message ([RemoteError.Error]), with
// %q the message quoted, and with %+v the message and, for a panic, the
// worker's stack. Logged through log/slog it is a group of its fields (see
// [RemoteError.LogValue]). Both apply to the *RemoteError itself: an error
// that wraps it prints and logs as its own message; errors.As finds it.
type RemoteError struct {
	Type      string   `msgpack:"type" json:"type"`
	Message   string   `msgpack:"message" json:"message"`
	Worker    string   `msgpack:"worker" json:"worker"`
	Function  string   `msgpack:"function,omitempty" json:"function,omitempty"`
	Stack     string   `msgpack:"stack,omitempty" json:"stack,omitempty"`
	Sentinels []string `msgpack:"sentinels,omitempty" json:"sentinels,omitempty"`
	// Panic is the panic value, as %v prints it, when the error was a
	// panic or wrapped one; empty otherwise (and from a worker built
	// before the field existed).
	Panic string `msgpack:"panic,omitempty" json:"panic,omitempty"`
}

// Error names the worker and the function, then gives the remote message
// and the remote error's Go type.
func (e *RemoteError) Error() string {
	var b strings.Builder
	b.WriteString("worker ")
	b.WriteString(e.Worker)
	if e.Function != "" {
		b.WriteString(": ")
		b.WriteString(e.Function)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	if e.Type != "" && !strings.HasPrefix(e.Type, "*errors.") && !strings.HasPrefix(e.Type, "*fmt.") && e.Type != "*bus.PanicError" {
		b.WriteString(" (")
		b.WriteString(e.Type)
		b.WriteString(")")
	}
	return b.String()
}

// Is reports whether target is a registered sentinel that the original
// error matched on the worker.
func (e *RemoteError) Is(target error) bool {
	return len(e.Sentinels) > 0 && registry.IsSentinel(e.Sentinels, target)
}

// Format implements fmt.Formatter: %v and %s give the message, %q the
// message quoted, %+v the message and, when the error was a panic, a
// blank line and the worker's stack, and %#v the Go syntax of the struct.
func (e *RemoteError) Format(f fmt.State, verb rune) {
	formatError(f, verb, e, e.Stack, func() string { return fmt.Sprintf("&%#v", *e) })
}

// LogValue implements slog.LogValuer: a group of "message" (the remote
// error's own message), "type" (its Go type), "worker", "function",
// "sentinels" (the names of the registered sentinels it matched), and for
// a panic "panic" (the value) and "stack"; those empty are left out.
func (e *RemoteError) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 7)
	attrs = append(attrs, slog.String("message", e.Message))
	for _, a := range [...]struct{ key, val string }{
		{"type", e.Type}, {"worker", e.Worker}, {"function", e.Function},
	} {
		if a.val != "" {
			attrs = append(attrs, slog.String(a.key, a.val))
		}
	}
	if len(e.Sentinels) > 0 {
		attrs = append(attrs, slog.Any("sentinels", e.Sentinels))
	}
	if e.Panic != "" {
		attrs = append(attrs, slog.String("panic", e.Panic))
	}
	if e.Stack != "" {
		attrs = append(attrs, slog.String("stack", e.Stack))
	}
	return slog.GroupValue(attrs...)
}

// formatError prints err for verb: the message for %v and %s (with the
// flags, width and precision given), quoted for %q, followed by a blank
// line and stack for %+v when there is one, goSyntax for %#v.
func formatError(f fmt.State, verb rune, err error, stack string, goSyntax func() string) {
	switch {
	case verb == 'v' && f.Flag('#'):
		io.WriteString(f, goSyntax())
	case verb == 'v' && f.Flag('+'):
		io.WriteString(f, err.Error())
		if stack != "" {
			io.WriteString(f, "\n\n")
			io.WriteString(f, strings.TrimRight(stack, "\n"))
		}
	case verb == 'v':
		fmt.Fprintf(f, fmt.FormatString(f, 's'), err.Error())
	case verb == 's', verb == 'q', verb == 'x', verb == 'X':
		fmt.Fprintf(f, fmt.FormatString(f, verb), err.Error())
	default:
		fmt.Fprintf(f, "%%!%c(%T=%s)", verb, err, err.Error())
	}
}

// Sentinel errors of remote objects.
var (
	// ErrObjectGone: the object was released on its worker, or the
	// reference used to reach it was closed.
	ErrObjectGone = registry.ErrObjectGone
	// ErrNoMember: the object has no exported method or field of that
	// name; the error lists those it has.
	ErrNoMember = registry.ErrNoMember
	// ErrNoItem: the object has no item of that key or index.
	ErrNoItem = registry.ErrNoItem
	// ErrNotHolder: a master used a reference it does not hold (it never
	// received it, or released it), or passed on one it does not hold.
	ErrNotHolder = registry.ErrNotHolder
)

// The errors of a call whose shape does not match the function's.
var (
	// ErrIsStream: a stream (RegisterStream) was called as a function;
	// consume it with master.Stream.
	ErrIsStream = registry.ErrIsStream
	// ErrNotStream: a function was called as a stream.
	ErrNotStream = registry.ErrNotStream
)
