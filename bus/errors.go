package bus

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
)

// Sentinel errors of the wire. Each is registered, so that it survives the
// trip from a worker to its master and errors.Is works on the master's side.
var (
	// ErrUnknownFunction: the worker has no function of that name.
	ErrUnknownFunction = RegisterError("bus.ErrUnknownFunction", errors.New("processional: unknown function"))
	// ErrArgumentType: the argument does not decode into the function's
	// argument type.
	ErrArgumentType = RegisterError("bus.ErrArgumentType", errors.New("processional: wrong argument type"))
	// ErrResultType: the result does not decode into the caller's result type.
	ErrResultType = RegisterError("bus.ErrResultType", errors.New("processional: wrong result type"))
	// ErrBadPayload: a message is not a processional envelope.
	ErrBadPayload = RegisterError("bus.ErrBadPayload", errors.New("processional: undecodable payload"))
	// ErrProtocolVersion: the two ends were built with different protocol
	// versions.
	ErrProtocolVersion = RegisterError("bus.ErrProtocolVersion", errors.New("processional: protocol version mismatch"))
	// ErrEncode: a value could not be encoded.
	ErrEncode = RegisterError("bus.ErrEncode", errors.New("processional: cannot encode value"))
	// ErrPanic: the function panicked; the error carries the panic value
	// and the stack.
	ErrPanic = RegisterError("bus.ErrPanic", errors.New("processional: panic"))
	// ErrTooBig: a call or a reply is larger than the NATS server's max
	// payload; the error gives the size and the limit.
	ErrTooBig = RegisterError("bus.ErrTooBig", errors.New("processional: payload too big"))
	// ErrClosed: the executor is closed or closing and takes no new task.
	ErrClosed = RegisterError("bus.ErrClosed", errors.New("processional: executor closed"))
	// ErrNotOwner: a master asked a worker what only its owner may (detach,
	// persist).
	ErrNotOwner = RegisterError("bus.ErrNotOwner", errors.New("processional: not the worker's owner"))
	// ErrLeaseLapsed: the worker heard no heartbeat from the master for a
	// whole lease and dropped the master's calls.
	ErrLeaseLapsed = RegisterError("bus.ErrLeaseLapsed", errors.New("processional: lease lapsed"))
	// ErrWorkerLost: the worker died or went away before answering.
	ErrWorkerLost = RegisterError("bus.ErrWorkerLost", errors.New("processional: worker lost"))
	// ErrOverloaded: the worker holds as many calls, queued or running, as
	// its limit allows, and refused this one at once rather than queue it
	// without bound; the error names the worker, the count and the limit.
	// The call did not run: it may be sent again later.
	ErrOverloaded = RegisterError("bus.ErrOverloaded", errors.New("processional: worker overloaded"))
)

func init() {
	RegisterError("context.Canceled", context.Canceled)
	RegisterError("context.DeadlineExceeded", context.DeadlineExceeded)
}

var sentinels struct {
	sync.RWMutex
	byName map[string]error
	names  []string // registration order, for a stable walk
}

// RegisterError registers a sentinel error under a name unique to the
// program, and returns it, so that a package declares its sentinels as
//
//	var ErrEmpty = bus.RegisterError("mypkg.ErrEmpty", errors.New("mypkg: empty input"))
//
// An error returned by a remote function that wraps a registered sentinel
// arrives at the master as a [*RemoteError] for which errors.Is(err, ErrEmpty)
// holds. Both binaries must register the sentinel under the same name. It is
// meant for package initialisation and panics on an empty name, a nil error
// or a name registered twice.
func RegisterError(name string, err error) error {
	if name == "" || err == nil {
		panic("bus: RegisterError needs a name and a non-nil error")
	}
	sentinels.Lock()
	defer sentinels.Unlock()
	if sentinels.byName == nil {
		sentinels.byName = make(map[string]error)
	}
	if _, dup := sentinels.byName[name]; dup {
		panic(fmt.Sprintf("bus: RegisterError: %q registered twice", name))
	}
	sentinels.byName[name] = err
	sentinels.names = append(sentinels.names, name)
	return err
}

// sentinelNames lists the registered sentinels that err matches.
func sentinelNames(err error) []string {
	sentinels.RLock()
	defer sentinels.RUnlock()
	var out []string
	for _, name := range sentinels.names {
		if errors.Is(err, sentinels.byName[name]) {
			out = append(out, name)
		}
	}
	return out
}

// PanicError is a recovered panic: its value and the stack of the goroutine
// that panicked. errors.Is(err, ErrPanic) holds for it; when the value is an
// error, errors.Is and errors.As also see through to it.
type PanicError struct {
	Value any
	Stack string
}

// NewPanicError wraps a value returned by recover with the current stack,
// from the frame that panicked down. Call it from the deferred function
// that recovered.
func NewPanicError(v any) *PanicError {
	return &PanicError{Value: v, Stack: trimPanicStack(string(debug.Stack()))}
}

// trimPanicStack drops the frames of the recovery (debug.Stack, the
// deferred function, runtime's panic) from a stack taken in a deferred
// recover, keeping the goroutine header and the frames from the panic
// site down.
func trimPanicStack(stack string) string {
	lines := strings.Split(stack, "\n")
	for i := 1; i+1 < len(lines); i++ {
		if strings.HasPrefix(lines[i], "panic(") {
			return strings.Join(append(lines[:1:1], lines[i+2:]...), "\n")
		}
	}
	return stack
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
// name, message, the worker and function at fault, and the stack when it was
// a panic. errors.Is holds for every registered sentinel the original error
// matched (see [RegisterError]).
type RemoteError struct {
	Type      string   `msgpack:"type" json:"type"`
	Message   string   `msgpack:"message" json:"message"`
	Worker    string   `msgpack:"worker" json:"worker"`
	Function  string   `msgpack:"function,omitempty" json:"function,omitempty"`
	Stack     string   `msgpack:"stack,omitempty" json:"stack,omitempty"`
	Sentinels []string `msgpack:"sentinels,omitempty" json:"sentinels,omitempty"`
}

// NewRemoteError describes err, raised by function on worker, for the wire.
func NewRemoteError(worker, function string, err error) *RemoteError {
	var re *RemoteError
	if errors.As(err, &re) {
		// An error that already came from elsewhere keeps its origin.
		cp := *re
		if cp.Function == "" {
			cp.Function = function
		}
		return &cp
	}
	r := &RemoteError{
		Type:      fmt.Sprintf("%T", err),
		Message:   err.Error(),
		Worker:    worker,
		Function:  function,
		Sentinels: sentinelNames(err),
	}
	var pe *PanicError
	if errors.As(err, &pe) {
		r.Stack = pe.Stack
	}
	return r
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
	if len(e.Sentinels) == 0 {
		return false
	}
	sentinels.RLock()
	defer sentinels.RUnlock()
	for _, name := range e.Sentinels {
		if s, ok := sentinels.byName[name]; ok && s == target {
			return true
		}
	}
	return false
}
