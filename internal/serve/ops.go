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

// The object operations (wire.OpCall…). Each decodes its argument and runs
// on the worker as the call cl.

type opFunc func(w *Worker, cl *call) (any, error)

var ops = map[string]opFunc{
	wire.OpWrap:     (*Worker).opWrap,
	wire.OpCall:     (*Worker).opCall,
	wire.OpGet:      (*Worker).opGet,
	wire.OpSet:      (*Worker).opSet,
	wire.OpIndex:    (*Worker).opIndex,
	wire.OpSetIndex: (*Worker).opSetIndex,
	wire.OpUnwrap:   (*Worker).opUnwrap,
	wire.OpAcquire:  (*Worker).opAcquire,
	wire.OpRelease:  (*Worker).opRelease,
}

// The operations' arguments as a worker decodes them: their values stay
// raw, aliasing the message, and reflection runs only for what the
// object's types need.
type (
	wrapArg   = wire.WrapOp[msgpack.RawMessage]
	callArg   = wire.CallOp[msgpack.RawMessage, msgpack.RawMessage]
	memberArg = wire.MemberOp[msgpack.RawMessage, msgpack.RawMessage]
	setArg    = wire.SetOp[msgpack.RawMessage, msgpack.RawMessage]
	targetArg = wire.TargetOp[msgpack.RawMessage]
)

// decodeOp decodes cl's argument into v: an operation's argument takes
// its array apart (wire.CallOp.Decode…); anything else is unmarshalled.
func (w *Worker) decodeOp(cl *call, v any) error {
	var err error
	if a, ok := v.(interface{ Decode(raw []byte) error }); ok {
		err = a.Decode(cl.arg)
	} else {
		err = codec.Unmarshal(cl.arg, v)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %v", bus.ErrBadPayload, cl.name, err)
	}
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
