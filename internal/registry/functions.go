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
	json     func(ctx context.Context, body []byte) (any, error)
}

// DecodeError is what an invoke function returns when the argument does
// not decode: Invoke and InvokeJSON turn it into an error that names the
// function and the types.
type DecodeError struct{ Err error }

func (e *DecodeError) Error() string { return e.Err.Error() }

// Add registers a function of argument type arg and result type res under
// name. invoke decodes a msgpack argument (with the codec context the
// caller gives) and calls the function; json does so from a JSON body.
// Either returns a *DecodeError when the argument does not decode. Add
// panics when the name is taken or malformed.
func Add(name string, arg, res reflect.Type, invoke func(ctx context.Context, arg []byte, codec any) (any, error), json func(ctx context.Context, body []byte) (any, error)) *Function {
	if err := CheckName(name); err != nil {
		panic(fmt.Sprintf("bus: Register(%q): %v", name, err))
	}
	f := &Function{name: name, arg: arg, res: res, argName: arg.String(), invoke: invoke, json: json}
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

// Name is the name the function was registered under.
func (f *Function) Name() string { return f.name }

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
	res, err := f.invoke(ctx, arg, codec)
	if de, ok := err.(*DecodeError); ok {
		if sent == "" {
			sent = "an undecodable value"
		}
		return nil, fmt.Errorf("%w: function %q expects %s, got %s: %w", ErrArgumentType, f.name, f.argName, sent, de.Err)
	}
	return res, err
}

// InvokeJSON decodes body, JSON, into the function's argument type and
// calls the function: for a caller with no msgpack, such as the nats CLI.
// An empty body stands for the argument's zero value. A body that does not
// fit gives an error wrapping [ErrArgumentType] that names the field and
// the type expected. It does not recover panics.
func (f *Function) InvokeJSON(ctx context.Context, body []byte) (any, error) {
	res, err := f.json(ctx, body)
	if de, ok := err.(*DecodeError); ok {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(de.Err, &te) && te.Field != "":
			return nil, fmt.Errorf("%w: function %q expects %s: field %q wants %s, got JSON %s", ErrArgumentType, f.name, f.argName, te.Field, te.Type, te.Value)
		case errors.As(de.Err, &te):
			return nil, fmt.Errorf("%w: function %q expects %s, got JSON %s", ErrArgumentType, f.name, f.argName, te.Value)
		case errors.As(de.Err, &se):
			return nil, fmt.Errorf("%w: function %q expects %s as JSON: the body is not JSON: %v", ErrArgumentType, f.name, f.argName, se)
		}
		return nil, fmt.Errorf("%w: function %q expects %s as JSON: %w", ErrArgumentType, f.name, f.argName, de.Err)
	}
	return res, err
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
