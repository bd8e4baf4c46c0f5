package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Function is a registered function seen without its types: what a worker
// looks up by name and calls with an encoded argument.
type Function struct {
	name     string
	arg, res reflect.Type
	argName  string
	invoke   func(ctx context.Context, arg []byte, codec any) (any, error)
	json     func(ctx context.Context, body []byte) (any, error)
}

// InvokeJSON decodes body, JSON, into the function's argument type and
// calls the function: for a caller with no msgpack, such as the nats CLI.
// An empty body stands for the argument's zero value. A body that does not
// fit gives an error wrapping [ErrArgumentType] that names the field and
// the type expected. Invoke does not recover panics.
func (f *Function) InvokeJSON(ctx context.Context, body []byte) (any, error) {
	res, err := f.json(ctx, body)
	if de, ok := err.(*decodeError); ok {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(de.err, &te) && te.Field != "":
			return nil, fmt.Errorf("%w: function %q expects %s: field %q wants %s, got JSON %s", ErrArgumentType, f.name, f.argName, te.Field, te.Type, te.Value)
		case errors.As(de.err, &te):
			return nil, fmt.Errorf("%w: function %q expects %s, got JSON %s", ErrArgumentType, f.name, f.argName, te.Value)
		case errors.As(de.err, &se):
			return nil, fmt.Errorf("%w: function %q expects %s as JSON: the body is not JSON: %v", ErrArgumentType, f.name, f.argName, se)
		}
		return nil, fmt.Errorf("%w: function %q expects %s as JSON: %w", ErrArgumentType, f.name, f.argName, de.err)
	}
	return res, err
}

// Name is the name the function was registered under.
func (f *Function) Name() string { return f.name }

// ArgType is the Go type of the function's argument.
func (f *Function) ArgType() reflect.Type { return f.arg }

// ResultType is the Go type of the function's result.
func (f *Function) ResultType() reflect.Type { return f.res }

// Invoke decodes arg into the function's argument type and calls the
// function. sent names the type the caller encoded (it may be empty); a
// payload that does not decode gives an error wrapping [ErrArgumentType]
// that names the expected and the sent type. Invoke does not recover panics:
// the caller owns that.
func (f *Function) Invoke(ctx context.Context, arg []byte, sent string) (any, error) {
	return f.InvokeWith(ctx, arg, sent, nil)
}

// InvokeWith is Invoke, decoding arg with [UnmarshalWith] and codec: the
// worker gives the context that binds the references the argument holds.
func (f *Function) InvokeWith(ctx context.Context, arg []byte, sent string, codec any) (any, error) {
	res, err := f.invoke(ctx, arg, codec)
	if de, ok := err.(*decodeError); ok {
		if sent == "" {
			sent = "an undecodable value"
		}
		return nil, fmt.Errorf("%w: function %q expects %s, got %s: %w", ErrArgumentType, f.name, f.argName, sent, de.err)
	}
	return res, err
}

type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }

// Func is a registered function with its argument type A and result type R.
// It is what executors accept: the same Func runs in a goroutine, on a slave
// thread or on a worker process. A Func is safe for concurrent use.
type Func[A, R any] struct {
	desc *Function
	fn   func(context.Context, A) (R, error)
}

// Name is the name the function was registered under.
func (f *Func[A, R]) Name() string { return f.desc.name }

// Function returns the untyped description of f.
func (f *Func[A, R]) Function() *Function { return f.desc }

// ArgTypeName is the name of A as it travels in call envelopes, for error
// messages on the worker.
func (f *Func[A, R]) ArgTypeName() string { return f.desc.argName }

// Call runs the function here, in the calling goroutine. It does not
// recover panics.
func (f *Func[A, R]) Call(ctx context.Context, arg A) (R, error) { return f.fn(ctx, arg) }

var registry struct {
	sync.RWMutex
	byName map[string]*Function
}

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
	if fn == nil {
		panic(fmt.Sprintf("bus: Register(%q): nil function", name))
	}
	if name == "" {
		name = runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	}
	if err := checkName(name); err != nil {
		panic(fmt.Sprintf("bus: Register(%q): %v", name, err))
	}
	at, rt := reflect.TypeFor[A](), reflect.TypeFor[R]()
	if err := checkTravel(at); err != nil {
		panic(fmt.Sprintf("bus: Register(%q): argument type cannot travel: %v", name, err))
	}
	if checkResult {
		if err := checkTravel(rt); err != nil {
			panic(fmt.Sprintf("bus: Register(%q): result type cannot travel: %v", name, err))
		}
	}
	f := &Func[A, R]{fn: fn}
	f.desc = &Function{
		name: name, arg: at, res: rt, argName: at.String(),
		invoke: func(ctx context.Context, data []byte, codec any) (any, error) {
			var a A
			if err := UnmarshalWith(data, &a, codec); err != nil {
				return nil, &decodeError{err}
			}
			r, err := fn(ctx, a)
			if err != nil {
				return nil, err
			}
			return r, nil
		},
		json: func(ctx context.Context, body []byte) (any, error) {
			var a A
			if len(bytes.TrimSpace(body)) > 0 {
				if err := json.Unmarshal(body, &a); err != nil {
					return nil, &decodeError{err}
				}
			}
			r, err := fn(ctx, a)
			if err != nil {
				return nil, err
			}
			return r, nil
		},
	}
	registry.Lock()
	defer registry.Unlock()
	if registry.byName == nil {
		registry.byName = make(map[string]*Function)
	}
	if _, dup := registry.byName[name]; dup {
		panic(fmt.Sprintf("bus: Register(%q): name registered twice", name))
	}
	registry.byName[name] = f.desc
	return f
}

func checkName(name string) error {
	if len(name) > 200 {
		return fmt.Errorf("name longer than 200 bytes")
	}
	if strings.HasPrefix(name, "@") {
		return fmt.Errorf("names that start with '@' are processional's own operations")
	}
	if strings.ContainsAny(name, " \t\r\n*>") {
		return fmt.Errorf("name contains white space, '*' or '>'")
	}
	for _, r := range name {
		if r < 0x21 || r > 0x7e {
			return fmt.Errorf("name has a character outside printable ASCII: %q", r)
		}
	}
	return nil
}

// Lookup returns the function registered under name.
func Lookup(name string) (*Function, bool) {
	registry.RLock()
	defer registry.RUnlock()
	f, ok := registry.byName[name]
	return f, ok
}

// Functions lists the registered functions, sorted by name.
func Functions() []*Function {
	registry.RLock()
	out := make([]*Function, 0, len(registry.byName))
	for _, f := range registry.byName {
		out = append(out, f)
	}
	registry.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
