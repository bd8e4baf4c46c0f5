package wire

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/registry"
)

// NewPanicError wraps a value returned by recover with the current stack,
// from the frame that panicked down. Call it from the deferred function
// that recovered.
func NewPanicError(v any) *bus.PanicError {
	return &bus.PanicError{Value: v, Stack: trimPanicStack(string(debug.Stack()))}
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

// NewRemoteError describes err, raised by function on worker, for the wire.
func NewRemoteError(worker, function string, err error) *bus.RemoteError {
	var re *bus.RemoteError
	if errors.As(err, &re) {
		// An error that already came from elsewhere keeps its origin.
		cp := *re
		if cp.Function == "" {
			cp.Function = function
		}
		return &cp
	}
	r := &bus.RemoteError{
		Type:      fmt.Sprintf("%T", err),
		Message:   err.Error(),
		Worker:    worker,
		Function:  function,
		Sentinels: registry.SentinelNames(err),
	}
	var pe *bus.PanicError
	if errors.As(err, &pe) {
		r.Stack, r.Panic = pe.Stack, fmt.Sprint(pe.Value)
	}
	return r
}
