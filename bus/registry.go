package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"

	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/registry"
)

// Func is a registered function with its argument type A and result type R.
// It is what executors accept: the same Func runs in a goroutine, on a slave
// thread or on a worker process. A Func is safe for concurrent use.
type Func[A, R any] struct {
	name string
	fn   func(context.Context, A) (R, error)
}

// Name is the name the function was registered under.
func (f *Func[A, R]) Name() string { return f.name }

// Call runs the function here, in the calling goroutine. It does not
// recover panics.
func (f *Func[A, R]) Call(ctx context.Context, arg A) (R, error) { return f.fn(ctx, arg) }

// Register registers fn under name and returns its typed handle. Call it at
// package level, so that every binary that links the package holds the
// function:
//
//	var Sum = bus.Register("sum", sum)
//
// An empty name stands for the Go qualified name of fn (such as
// "main.sum"); give function literals a name, as theirs is not stable.
// Register panics at start-up, naming the function and the type, when fn is
// nil, the name is taken or malformed, or A or R cannot travel (a func, a
// chan, an unsafe pointer, or a type the codec cannot round-trip). It is
// safe for concurrent use, but meant for package initialisation.
func Register[A, R any](name string, fn func(context.Context, A) (R, error)) *Func[A, R] {
	return register(name, fn, true)
}

// RegisterConstructor registers fn as Register does, but its result type
// need not travel: fn makes objects that stay on the worker, behind a
// reference (master.Wrap). A Func registered so can still be invoked; a
// result that cannot be encoded then fails the call with [ErrEncode].
func RegisterConstructor[A, R any](name string, fn func(context.Context, A) (R, error)) *Func[A, R] {
	return register(name, fn, false)
}

func register[A, R any](name string, fn func(context.Context, A) (R, error), checkResult bool) *Func[A, R] {
	at, rt := reflect.TypeFor[A](), reflect.TypeFor[R]()
	name = checkRegistration("Register", name, fn == nil, fn, at, rt, "result", checkResult)
	call := func(ctx context.Context, data []byte, cctx any) (r R, err error) {
		var a A
		if err := codec.UnmarshalWith(data, &a, cctx); err != nil {
			return r, &registry.DecodeError{Err: err}
		}
		return fn(ctx, a)
	}
	registry.Add(name, at, rt,
		func(ctx context.Context, data []byte, cctx any) (any, error) {
			r, err := call(ctx, data, cctx)
			if err != nil {
				return nil, err
			}
			return r, nil
		},
		func(ctx context.Context, data []byte, cctx any, dst []byte) ([]byte, any, bool, error) {
			r, err := call(ctx, data, cctx)
			if err != nil {
				return dst, nil, false, err
			}
			if out, ok := codec.AppendSmall(dst, r); ok {
				return out, nil, true, nil
			}
			return dst, r, false, nil
		},
		func(ctx context.Context, body []byte) (any, error) {
			var a A
			if len(bytes.TrimSpace(body)) > 0 {
				if err := json.Unmarshal(body, &a); err != nil {
					return nil, &registry.DecodeError{Err: err}
				}
			}
			r, err := fn(ctx, a)
			if err != nil {
				return nil, err
			}
			return r, nil
		})
	return &Func[A, R]{name: name, fn: fn}
}

// checkRegistration checks what a registration (by call, such as
// "Register") is given, and returns the name to register under: name, or
// fn's qualified name. It panics, naming the function and what is wrong,
// when fn is nil, the name is malformed, or the argument type (or, if
// checkOut, the result or item type, out names which) cannot travel.
func checkRegistration(call, name string, isNil bool, fn any, arg, res reflect.Type, out string, checkOut bool) string {
	if isNil {
		panic(fmt.Sprintf("bus: %s(%q): nil function", call, name))
	}
	if name == "" {
		name = runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	}
	if err := registry.CheckName(name); err != nil {
		panic(fmt.Sprintf("bus: %s(%q): %v", call, name, err))
	}
	if err := codec.CheckTravel(arg); err != nil {
		panic(fmt.Sprintf("bus: %s(%q): argument type cannot travel: %v", call, name, err))
	}
	if checkOut {
		if err := codec.CheckTravel(res); err != nil {
			panic(fmt.Sprintf("bus: %s(%q): %s type cannot travel: %v", call, name, out, err))
		}
	}
	return name
}
