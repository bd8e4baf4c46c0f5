package serve

import (
	"fmt"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/registry"
	"github.com/processional/processional/internal/wire"
)

// The operations on objects are calls like any other, under reserved
// function names that start with '@': they keep the order of a master's
// blocking calls, run concurrently as thread calls, honour deadlines and
// cancellation.

// The operations. Each decodes its argument, a msgpack array, and runs on
// the worker as the call cl.

type opFunc func(w *Worker, cl *call) (any, error)

var ops = map[string]opFunc{
	"@wrap":     (*Worker).opWrap,
	"@call":     (*Worker).opCall,
	"@get":      (*Worker).opGet,
	"@set":      (*Worker).opSet,
	"@index":    (*Worker).opIndex,
	"@setindex": (*Worker).opSetIndex,
	"@unwrap":   (*Worker).opUnwrap,
	"@acquire":  (*Worker).opAcquire,
	"@release":  (*Worker).opRelease,
}

// Operation arguments, as they travel.
type (
	wrapArg struct {
		_msgpack struct{} `msgpack:",as_array"`
		Function string
		ArgType  string
		Arg      msgpack.RawMessage
	}
	callArg struct {
		_msgpack struct{} `msgpack:",as_array"`
		Target   msgpack.RawMessage
		Method   string
		WantRef  bool
		Args     []msgpack.RawMessage
	}
	memberArg struct { // @get and @index
		_msgpack struct{} `msgpack:",as_array"`
		Target   msgpack.RawMessage
		Key      msgpack.RawMessage // a field name (string) or an item's key
		WantRef  bool
	}
	setArg struct { // @set and @setindex
		_msgpack struct{} `msgpack:",as_array"`
		Target   msgpack.RawMessage
		Key      msgpack.RawMessage
		Value    msgpack.RawMessage
	}
	targetArg struct { // @unwrap and @acquire
		_msgpack struct{} `msgpack:",as_array"`
		Target   msgpack.RawMessage
	}
)

// opArg is an operation's argument, a msgpack array of n values that it
// takes apart by hand: the operation's values stay raw, aliasing the
// message, and reflection runs only for what the object's types need.
type opArg interface {
	n() int
	parse(parts [][]byte) error
}

func (w *Worker) decodeOp(cl *call, v any) error {
	var err error
	if a, ok := v.(opArg); ok {
		var buf [4][]byte
		var parts [][]byte
		parts, err = codec.SplitArray(cl.arg, buf[:0])
		if err == nil && len(parts) != a.n() {
			err = fmt.Errorf("want an array of %d values, got %d", a.n(), len(parts))
		}
		if err == nil {
			err = a.parse(parts)
		}
	} else {
		err = codec.Unmarshal(cl.arg, v)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %v", bus.ErrBadPayload, cl.name, err)
	}
	return nil
}

func decodeBool(raw []byte) (bool, error) {
	if len(raw) == 1 && (raw[0] == 0xc2 || raw[0] == 0xc3) {
		return raw[0] == 0xc3, nil
	}
	return false, fmt.Errorf("want a bool")
}

func (*wrapArg) n() int { return 3 }
func (a *wrapArg) parse(p [][]byte) (err error) {
	if a.Function, err = codec.DecodeString(p[0]); err != nil {
		return err
	}
	if a.ArgType, err = codec.DecodeString(p[1]); err != nil {
		return err
	}
	a.Arg = p[2]
	return nil
}

func (*callArg) n() int { return 4 }
func (a *callArg) parse(p [][]byte) (err error) {
	a.Target = p[0]
	if a.Method, err = codec.DecodeString(p[1]); err != nil {
		return err
	}
	if a.WantRef, err = decodeBool(p[2]); err != nil {
		return err
	}
	if len(p[3]) == 1 && p[3][0] == 0xc0 {
		return nil // nil: no arguments
	}
	if n, ok := arrayLen(p[3]); !ok || n > maxArgs {
		return fmt.Errorf("want an array of at most %d arguments", maxArgs)
	}
	args, err := codec.SplitArray(p[3], make([][]byte, 0, 4))
	for _, r := range args {
		a.Args = append(a.Args, r)
	}
	return err
}

// maxArgs bounds a method call's arguments, before they are split.
const maxArgs = wire.MaxArgs

// arrayLen reads the length of the msgpack array at the start of raw.
func arrayLen(raw []byte) (int, bool) {
	switch {
	case len(raw) >= 1 && raw[0]&0xf0 == 0x90:
		return int(raw[0] & 0x0f), true
	case len(raw) >= 3 && raw[0] == 0xdc:
		return int(raw[1])<<8 | int(raw[2]), true
	case len(raw) >= 5 && raw[0] == 0xdd:
		return int(uint32(raw[1])<<24 | uint32(raw[2])<<16 | uint32(raw[3])<<8 | uint32(raw[4])), true
	}
	return 0, false
}

func (*memberArg) n() int { return 3 }
func (a *memberArg) parse(p [][]byte) (err error) {
	a.Target, a.Key = p[0], p[1]
	a.WantRef, err = decodeBool(p[2])
	return err
}

func (*setArg) n() int { return 3 }
func (a *setArg) parse(p [][]byte) error {
	a.Target, a.Key, a.Value = p[0], p[1], p[2]
	return nil
}

func (*targetArg) n() int { return 1 }
func (a *targetArg) parse(p [][]byte) error {
	a.Target = p[0]
	return nil
}

// result returns v, or a reference to it for the caller when wantRef;
// owned says whether the table owns v (see keepOwned).
func (w *Worker) result(cl *call, v reflect.Value, wantRef, owned bool) (any, error) {
	if wantRef {
		return w.keepOwned(v, cl.key.master, owned)
	}
	if !v.IsValid() {
		return nil, nil
	}
	return v.Interface(), nil
}

func (w *Worker) opWrap(cl *call) (any, error) {
	var a wrapArg
	if err := w.decodeOp(cl, &a); err != nil {
		return nil, err
	}
	cl.name = a.Function
	fn, ok := registry.Lookup(a.Function)
	if !ok {
		return nil, fmt.Errorf("%w %q on worker %s", bus.ErrUnknownFunction, a.Function, w.id)
	}
	if len(a.Arg) == 0 {
		a.Arg = msgpackNil
	}
	res, err := fn.InvokeWith(&cl.ctx, a.Arg, a.ArgType, w.peer)
	if err != nil {
		return nil, err
	}
	return w.result(cl, reflect.ValueOf(res), true, true)
}

func (w *Worker) opCall(cl *call) (res any, err error) {
	var a callArg
	if err := w.decodeOp(cl, &a); err != nil {
		return nil, err
	}
	o, err := w.pinTarget(cl, a.Target)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cl.name = "(" + o.typ + ")." + a.Method // for the error's message
		}
	}()
	m, err := method(o, a.Method)
	if err != nil {
		return nil, err
	}
	mt := m.Type()
	in, err := w.args(cl, o, a.Method, mt, a.Args)
	if err != nil {
		return nil, err
	}
	out := m.Call(in)
	if n := mt.NumOut(); n > 0 && mt.Out(n-1) == errorType {
		if e := out[n-1]; !e.IsNil() {
			return nil, e.Interface().(error)
		}
		out = out[:n-1]
	}
	if a.WantRef {
		if len(out) != 1 {
			return nil, fmt.Errorf("%w: (%s).%s returns %d values besides an error: a reference is to one", bus.ErrResultType, o.typ, a.Method, len(out))
		}
		return w.result(cl, out[0], true, true)
	}
	switch len(out) {
	case 0:
		return nil, nil
	case 1:
		return out[0].Interface(), nil
	}
	all := make([]any, len(out))
	for i, v := range out {
		all[i] = v.Interface()
	}
	return all, nil
}

func (w *Worker) opGet(cl *call) (any, error) {
	var a memberArg
	if err := w.decodeOp(cl, &a); err != nil {
		return nil, err
	}
	o, err := w.pinTarget(cl, a.Target)
	if err != nil {
		return nil, err
	}
	f, _, err := field(o, a.Key)
	if err != nil {
		return nil, err
	}
	return w.result(cl, f, a.WantRef, false)
}

func (w *Worker) opSet(cl *call) (any, error) {
	var a setArg
	if err := w.decodeOp(cl, &a); err != nil {
		return nil, err
	}
	o, err := w.pinTarget(cl, a.Target)
	if err != nil {
		return nil, err
	}
	f, name, err := field(o, a.Key)
	if err != nil {
		return nil, err
	}
	if !f.CanSet() {
		return nil, fmt.Errorf("%w: field %s of %s cannot be set", bus.ErrNoMember, name, o.typ)
	}
	v, err := w.decodeArg(cl, a.Value, f.Type())
	if err != nil {
		return nil, fmt.Errorf("%w: field %s of %s is a %s: %w", bus.ErrArgumentType, name, o.typ, f.Type(), err)
	}
	f.Set(v)
	return nil, nil
}

func (w *Worker) opIndex(cl *call) (any, error) {
	var a memberArg
	if err := w.decodeOp(cl, &a); err != nil {
		return nil, err
	}
	o, err := w.pinTarget(cl, a.Target)
	if err != nil {
		return nil, err
	}
	c, err := container(o)
	if err != nil {
		return nil, err
	}
	e, _, err := w.item(cl, o, c, a.Key)
	if err != nil {
		return nil, err
	}
	return w.result(cl, e, a.WantRef, false)
}

func (w *Worker) opSetIndex(cl *call) (any, error) {
	var a setArg
	if err := w.decodeOp(cl, &a); err != nil {
		return nil, err
	}
	o, err := w.pinTarget(cl, a.Target)
	if err != nil {
		return nil, err
	}
	c, err := container(o)
	if err != nil {
		return nil, err
	}
	if c.Kind() == reflect.Map {
		if c.IsNil() {
			return nil, fmt.Errorf("%w: %s is a nil map", bus.ErrNoItem, o.typ)
		}
		key, err := w.decodeArg(cl, a.Key, c.Type().Key())
		if err != nil {
			return nil, fmt.Errorf("%w: the keys of %s are %s: %w", bus.ErrArgumentType, o.typ, c.Type().Key(), err)
		}
		v, err := w.decodeArg(cl, a.Value, c.Type().Elem())
		if err != nil {
			return nil, fmt.Errorf("%w: the items of %s are %s: %w", bus.ErrArgumentType, o.typ, c.Type().Elem(), err)
		}
		c.SetMapIndex(key, v)
		return nil, nil
	}
	e, _, err := w.item(cl, o, c, a.Key)
	if err != nil {
		return nil, err
	}
	if !e.CanSet() {
		return nil, fmt.Errorf("%w: the items of %s cannot be set", bus.ErrNoItem, o.typ)
	}
	v, err := w.decodeArg(cl, a.Value, e.Type())
	if err != nil {
		return nil, fmt.Errorf("%w: the items of %s are %s: %w", bus.ErrArgumentType, o.typ, e.Type(), err)
	}
	e.Set(v)
	return nil, nil
}

func (w *Worker) opUnwrap(cl *call) (any, error) {
	var a targetArg
	if err := w.decodeOp(cl, &a); err != nil {
		return nil, err
	}
	o, err := w.pinTarget(cl, a.Target)
	if err != nil {
		return nil, err
	}
	if err := codec.CheckTravel(o.v.Type()); err != nil {
		return nil, fmt.Errorf("%w: %s cannot be copied to the master: %v", bus.ErrEncode, o.typ, err)
	}
	return o.v.Interface(), nil
}

// opAcquire grants the caller one more reference to an object: a holder
// that received a reference from someone else. The reference names who
// passed it on, who must hold one still (or the caller must).
func (w *Worker) opAcquire(cl *call) (any, error) {
	var a targetArg
	if err := w.decodeOp(cl, &a); err != nil {
		return nil, err
	}
	from := cl.key.master
	if r, err := wire.DecodeRef(a.Target); err == nil && r.Holder != "" {
		from = r.Holder
	}
	o, err := w.pinHeld(cl, a.Target, from)
	if err != nil {
		return nil, err
	}
	return nil, w.grant(o, cl.key.master)
}

// opRelease releases references: its argument is the flat list
// [id, count, id, count, …].
func (w *Worker) opRelease(cl *call) (any, error) {
	var pairs []uint64
	if err := w.decodeOp(cl, &pairs); err != nil {
		return nil, err
	}
	if len(pairs)%2 != 0 {
		return nil, fmt.Errorf("%w: %s: an odd list of %d numbers", bus.ErrBadPayload, cl.name, len(pairs))
	}
	for i := 0; i < len(pairs); i += 2 {
		n := pairs[i+1]
		if n > 1<<62 {
			n = 1 << 62
		}
		w.release(cl.key.master, pairs[i], int64(n))
	}
	return nil, nil
}
