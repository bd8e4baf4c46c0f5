package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
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
	appendTo AppendInvoker // invoke, appending a small result's encoding itself
	json     func(ctx context.Context, body []byte) (any, error)
	// A stream's, instead of invoke and json: they call emit with each
	// item, and stop when it returns false.
	stream     func(ctx context.Context, arg []byte, codec any, emit func(any) bool) error
	streamJSON func(ctx context.Context, body []byte, emit func(any) bool) error
}

// DecodeError is what an invoke function returns when the argument does
// not decode: Invoke and InvokeJSON turn it into an error that names the
// function and the types.
type DecodeError struct{ Err error }

func (e *DecodeError) Error() string { return e.Err.Error() }

// Add registers a function of argument type arg and result type res under
// name. invoke decodes a msgpack argument (with the codec context the
// caller gives) and calls the function; appendTo does too, and appends
// the encoding of a small result itself; json does so
// from a JSON body. Each returns a *DecodeError when the argument does
// not decode. Add panics when the name is taken or malformed.
func Add(name string, arg, res reflect.Type, invoke func(ctx context.Context, arg []byte, codec any) (any, error), appendTo AppendInvoker, json func(ctx context.Context, body []byte) (any, error)) *Function {
	return add(&Function{name: name, arg: arg, res: res, argName: arg.String(), invoke: invoke, appendTo: appendTo, json: json})
}

// An AppendInvoker decodes arg and calls a function, as Add's invoke
// does; then, when the result is small enough to encode with no encoder
// (codec.AppendSmall), it appends its encoding to dst and returns it
// with encoded true; else it returns dst as it was, and the result, to
// encode as any other. A typed result given back encoded is never boxed
// in an interface: one allocation less a call.
type AppendInvoker func(ctx context.Context, arg []byte, codec any, dst []byte) (out []byte, res any, encoded bool, err error)

func add(f *Function) *Function {
	name := f.name
	if err := CheckName(name); err != nil {
		panic(fmt.Sprintf("bus: Register(%q): %v", name, err))
	}
	functions.Lock()
	defer functions.Unlock()
	if functions.byName == nil {
		functions.byName = make(map[string]*Function)
	}
	if _, dup := functions.byName[name]; dup {
		panic(fmt.Sprintf("bus: Register(%q): name registered twice", name))
	}
	functions.byName[name] = f
	return f
}

// AddStream registers a stream of argument type arg and item type item
// under name, as Add does a function: stream decodes a msgpack argument
// and runs the stream, json does so from a JSON body; each calls emit
// with every item, and stops when it returns false.
func AddStream(name string, arg, item reflect.Type, stream func(ctx context.Context, arg []byte, codec any, emit func(any) bool) error, json func(ctx context.Context, body []byte, emit func(any) bool) error) *Function {
	return add(&Function{name: name, arg: arg, res: item, argName: arg.String(), stream: stream, streamJSON: json})
}

// Name is the name the function was registered under.
func (f *Function) Name() string { return f.name }

// IsStream reports whether f is a stream (registered with AddStream):
// its result type is then the type of its items.
func (f *Function) IsStream() bool { return f.stream != nil }

// ArgType is the Go type of the function's argument.
func (f *Function) ArgType() reflect.Type { return f.arg }

// ArgTypeName is the name of the argument's type, as it travels in call
// envelopes for error messages.
func (f *Function) ArgTypeName() string { return f.argName }

// ResultType is the Go type of the function's result.
func (f *Function) ResultType() reflect.Type { return f.res }

// Invoke decodes arg into the function's argument type and calls the
// function. sent names the type the caller encoded (it may be empty); a
// payload that does not decode gives an error wrapping [ErrArgumentType]
// that names the expected and the sent type. It does not recover panics:
// the caller owns that.
func (f *Function) Invoke(ctx context.Context, arg []byte, sent string) (any, error) {
	return f.InvokeWith(ctx, arg, sent, nil)
}

// InvokeWith is Invoke, decoding arg with the codec context codec: the
// worker gives the context that binds the references the argument holds.
func (f *Function) InvokeWith(ctx context.Context, arg []byte, sent string, codec any) (any, error) {
	if f.stream != nil {
		return nil, fmt.Errorf("%w: %q is a stream of %s: consume it with master.Stream", ErrIsStream, f.name, f.res)
	}
	res, err := f.invoke(ctx, arg, codec)
	return res, f.argError(err, sent)
}

// InvokeAppend is InvokeWith, appending the encoding of a small result
// to dst itself (see [AppendInvoker]): when encoded is true, out is dst
// with the result's encoding appended, and res is nil.
func (f *Function) InvokeAppend(ctx context.Context, arg []byte, sent string, codec any, dst []byte) (out []byte, res any, encoded bool, err error) {
	if f.stream != nil {
		return dst, nil, false, fmt.Errorf("%w: %q is a stream of %s: consume it with master.Stream", ErrIsStream, f.name, f.res)
	}
	out, res, encoded, err = f.appendTo(ctx, arg, codec, dst)
	return out, res, encoded, f.argError(err, sent)
}

// Stream decodes arg into the stream's argument type and runs the
// stream, calling emit with each item until it returns false; as
// InvokeWith does for a function. A function that is not a stream
// fails with [ErrNotStream]. It does not recover panics.
func (f *Function) Stream(ctx context.Context, arg []byte, sent string, codec any, emit func(any) bool) error {
	if f.stream == nil {
		return fmt.Errorf("%w: %q is a function of %s, not a stream: call it with Invoke, Schedule or Thread", ErrNotStream, f.name, f.res)
	}
	return f.argError(f.stream(ctx, arg, codec, emit), sent)
}

// argError turns a *DecodeError into an error wrapping [ErrArgumentType]
// that names the expected and the sent type; it returns any other error
// as it is.
func (f *Function) argError(err error, sent string) error {
	if de, ok := err.(*DecodeError); ok {
		if sent == "" {
			sent = "an undecodable value"
		}
		return fmt.Errorf("%w: function %q expects %s, got %s: %w", ErrArgumentType, f.name, f.argName, sent, de.Err)
	}
	return err
}

// InvokeJSON decodes body, JSON, into the function's argument type and
// calls the function: for a caller with no msgpack, such as the nats CLI.
// An empty body stands for the argument's zero value. A body that does not
// fit gives an error wrapping [ErrArgumentType] that names the field and
// the type expected. It does not recover panics.
func (f *Function) InvokeJSON(ctx context.Context, body []byte) (any, error) {
	if f.stream != nil {
		return nil, fmt.Errorf("%w: %q is a stream of %s", ErrIsStream, f.name, f.res)
	}
	res, err := f.json(ctx, body)
	return res, f.jsonArgError(err)
}

// StreamJSON is Stream from a JSON body, as InvokeJSON is Invoke.
func (f *Function) StreamJSON(ctx context.Context, body []byte, emit func(any) bool) error {
	if f.stream == nil {
		return fmt.Errorf("%w: %q is a function of %s, not a stream", ErrNotStream, f.name, f.res)
	}
	return f.jsonArgError(f.streamJSON(ctx, body, emit))
}

// jsonArgError turns a *DecodeError from a JSON body into an error
// wrapping [ErrArgumentType] that names the field and the type expected;
// it returns any other error as it is.
func (f *Function) jsonArgError(err error) error {
	if de, ok := err.(*DecodeError); ok {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(de.Err, &te) && te.Field != "":
			return fmt.Errorf("%w: function %q expects %s: field %q wants %s, got JSON %s", ErrArgumentType, f.name, f.argName, te.Field, te.Type, te.Value)
		case errors.As(de.Err, &te):
			return fmt.Errorf("%w: function %q expects %s, got JSON %s", ErrArgumentType, f.name, f.argName, te.Value)
		case errors.As(de.Err, &se):
			return fmt.Errorf("%w: function %q expects %s as JSON: the body is not JSON: %v", ErrArgumentType, f.name, f.argName, se)
		}
		return fmt.Errorf("%w: function %q expects %s as JSON: %w", ErrArgumentType, f.name, f.argName, de.Err)
	}
	return err
}

var functions struct {
	sync.RWMutex
	byName map[string]*Function
}

// CheckName reports what is wrong with a function's name, or nil.
func CheckName(name string) error {
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
	functions.RLock()
	defer functions.RUnlock()
	f, ok := functions.byName[name]
	return f, ok
}

// Functions lists the registered functions, sorted by name.
func Functions() []*Function {
	functions.RLock()
	out := make([]*Function, 0, len(functions.byName))
	for _, f := range functions.byName {
		out = append(out, f)
	}
	functions.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
