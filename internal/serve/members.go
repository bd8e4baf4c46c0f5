package serve

// Reflection on a held object: its methods, fields and items, found by
// name, and the values of a call decoded into their types.

import (
	"context"
	"fmt"
	"go/token"
	"reflect"
	"strings"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/peer"
	"github.com/processional/processional/internal/wire"
)

var (
	errorType   = reflect.TypeFor[error]()
	contextType = reflect.TypeFor[context.Context]()
)

// method finds the exported method name of o, with a pointer receiver or
// not.
func method(o *object, name string) (reflect.Value, error) {
	if !token.IsExported(name) {
		return reflect.Value{}, fmt.Errorf("%w: method %q of %s is not exported: only exported methods can be called", bus.ErrNoMember, name, o.typ)
	}
	v := o.v
	if v.Kind() != reflect.Pointer && v.CanAddr() {
		v = v.Addr()
	}
	key := methodKey{v.Type(), name}
	if i, ok := methodIndex.Load(key); ok {
		return v.Method(i.(int)), nil
	}
	if m, ok := v.Type().MethodByName(name); ok {
		methodIndex.Store(key, m.Index)
		return v.Method(m.Index), nil
	}
	return reflect.Value{}, fmt.Errorf("%w: %s has no method %q; %s", bus.ErrNoMember, o.typ, name, listMethods(v.Type()))
}

// methodIndex caches the index of a method by type and name:
// reflect's MethodByName builds the method's type anew on every call.
var methodIndex sync.Map // methodKey → int

type methodKey struct {
	t    reflect.Type
	name string
}

func listMethods(t reflect.Type) string {
	if t.NumMethod() == 0 {
		return "it has no exported methods"
	}
	names := make([]string, t.NumMethod())
	for i := range names {
		names[i] = t.Method(i).Name
	}
	return "its methods: " + strings.Join(names, ", ")
}

// args decodes a method's arguments into its parameter types. A method
// whose first parameter is a context.Context gets the call's context
// there, without the caller sending it.
func (w *Worker) args(cl *call, o *object, name string, mt reflect.Type, raw []msgpack.RawMessage) ([]reflect.Value, error) {
	n := mt.NumIn()
	in := make([]reflect.Value, 0, n)
	first := 0
	if n > 0 && mt.In(0) == contextType {
		in = append(in, reflect.ValueOf(context.Context(&cl.ctx)))
		first = 1
	}
	want := n - first
	if mt.IsVariadic() {
		if len(raw) < want-1 {
			return nil, fmt.Errorf("%w: (%s).%s takes at least %d arguments (%s), got %d", bus.ErrArgumentType, o.typ, name, want-1, params(mt, first), len(raw))
		}
	} else if len(raw) != want {
		return nil, fmt.Errorf("%w: (%s).%s takes %d arguments (%s), got %d", bus.ErrArgumentType, o.typ, name, want, params(mt, first), len(raw))
	}
	for i, r := range raw {
		var pt reflect.Type
		if k := first + i; mt.IsVariadic() && k >= n-1 {
			pt = mt.In(n - 1).Elem()
		} else {
			pt = mt.In(k)
		}
		v, err := w.decodeArg(cl, r, pt)
		if err != nil {
			return nil, fmt.Errorf("%w: (%s).%s argument %d (%s): %w", bus.ErrArgumentType, o.typ, name, i+1, pt, err)
		}
		in = append(in, v)
	}
	return in, nil
}

func params(mt reflect.Type, first int) string {
	var b []string
	for i := first; i < mt.NumIn(); i++ {
		s := mt.In(i).String()
		if mt.IsVariadic() && i == mt.NumIn()-1 {
			s = "..." + mt.In(i).Elem().String()
		}
		b = append(b, s)
	}
	if len(b) == 0 {
		return "none"
	}
	return strings.Join(b, ", ")
}

// decodeArg decodes raw into a value of type t. A reference to an object
// of this worker arrives as the object itself where t can hold it.
func (w *Worker) decodeArg(cl *call, raw []byte, t reflect.Type) (reflect.Value, error) {
	if len(raw) == 0 {
		raw = msgpackNil // a nil RawMessage: the value was nil
	}
	if wire.IsRef(raw) {
		r, err := wire.DecodeRef(raw)
		if err != nil {
			return reflect.Value{}, err
		}
		if r.Worker == w.id {
			obj, err := w.pinArg(cl, r)
			if err != nil {
				return reflect.Value{}, err
			}
			v := reflect.ValueOf(obj)
			if v.Type().AssignableTo(t) {
				return v, nil
			}
			if v.Kind() == reflect.Pointer && v.Elem().Type().AssignableTo(t) {
				return v.Elem(), nil
			}
		}
		if t.Kind() == reflect.Interface {
			return w.bindInterface(r, raw, t)
		}
	}
	p := reflect.New(t)
	if t.PkgPath() == "" && codec.DecodeScalar(raw, p.Elem()) { // a predeclared type: no decoder of its own
		return p.Elem(), nil
	}
	if err := codec.UnmarshalWith(raw, p.Interface(), w.peer); err != nil {
		return reflect.Value{}, err
	}
	return p.Elem(), nil
}

var msgpackNil = []byte{0xc0}

// bindInterface decodes r, a reference to another worker's object (or to
// one of ours that t cannot hold), for a parameter of interface type t:
// as whatever the program makes of a reference in an interface, a
// *master.Ref where the program links package master. It first decodes
// it unbound, to check that t can hold it, and binds it only then.
func (w *Worker) bindInterface(r wire.ObjectRef, raw []byte, t reflect.Type) (reflect.Value, error) {
	var probe any
	err := codec.UnmarshalWith(raw, &probe, &peer.Context{Probe: true})
	if err != nil || probe == nil || !reflect.TypeOf(probe).Implements(t) {
		return reflect.Value{}, fmt.Errorf("got a reference to %s, which a %s cannot hold: declare the parameter as *master.Ref to receive a working reference", r, t)
	}
	p := reflect.New(t)
	if err := codec.UnmarshalWith(raw, p.Interface(), w.peer); err != nil {
		return reflect.Value{}, err
	}
	return p.Elem(), nil
}

// structOf returns the struct o is or points to.
func structOf(o *object) (reflect.Value, error) {
	v := o.v
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return reflect.Value{}, fmt.Errorf("%w: %s is nil", bus.ErrNoMember, o.typ)
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, fmt.Errorf("%w: %s is a %s, not a struct: it has no fields", bus.ErrNoMember, o.typ, v.Kind())
	}
	return v, nil
}

func field(o *object, raw []byte) (reflect.Value, string, error) {
	var name string
	if err := codec.Unmarshal(raw, &name); err != nil {
		return reflect.Value{}, "", fmt.Errorf("%w: a field name: %v", bus.ErrBadPayload, err)
	}
	v, err := structOf(o)
	if err != nil {
		return reflect.Value{}, name, err
	}
	if !token.IsExported(name) {
		return reflect.Value{}, name, fmt.Errorf("%w: field %q of %s is not exported: only exported fields can be read or set", bus.ErrNoMember, name, o.typ)
	}
	sf, ok := v.Type().FieldByName(name)
	if !ok || !sf.IsExported() {
		var names []string
		for _, f := range reflect.VisibleFields(v.Type()) {
			if f.IsExported() && !f.Anonymous {
				names = append(names, f.Name)
			}
		}
		list := "it has no exported fields"
		if len(names) > 0 {
			list = "its fields: " + strings.Join(names, ", ")
		}
		return reflect.Value{}, name, fmt.Errorf("%w: %s has no field %q; %s", bus.ErrNoMember, o.typ, name, list)
	}
	f, err := v.FieldByIndexErr(sf.Index)
	if err != nil {
		return reflect.Value{}, name, fmt.Errorf("%w: %s.%s: %v", bus.ErrNoMember, o.typ, name, err)
	}
	return f, name, nil
}

// container returns the map, slice, array or string o is or points to.
func container(o *object) (reflect.Value, error) {
	v := o.v
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return reflect.Value{}, fmt.Errorf("%w: %s is nil", bus.ErrNoItem, o.typ)
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Map, reflect.Slice, reflect.Array, reflect.String:
		return v, nil
	}
	return reflect.Value{}, fmt.Errorf("%w: %s is a %s: it has no items", bus.ErrNoMember, o.typ, v.Kind())
}

// item finds the item of c at the key in raw; for a map, it returns the
// decoded key too.
func (w *Worker) item(cl *call, o *object, c reflect.Value, raw []byte) (elem, key reflect.Value, err error) {
	if c.Kind() == reflect.Map {
		key, err = w.decodeArg(cl, raw, c.Type().Key())
		if err != nil {
			return elem, key, fmt.Errorf("%w: the keys of %s are %s: %w", bus.ErrArgumentType, o.typ, c.Type().Key(), err)
		}
		elem = c.MapIndex(key)
		if !elem.IsValid() {
			return elem, key, fmt.Errorf("%w: %s has no key %v", bus.ErrNoItem, o.typ, key)
		}
		return elem, key, nil
	}
	var i int
	if err := codec.Unmarshal(raw, &i); err != nil {
		return elem, key, fmt.Errorf("%w: %s is indexed by an int: %w", bus.ErrArgumentType, o.typ, err)
	}
	if i < 0 || i >= c.Len() {
		return elem, key, fmt.Errorf("%w: index %d out of range [0, %d) of %s", bus.ErrNoItem, i, c.Len(), o.typ)
	}
	return c.Index(i), key, nil
}
