package serve

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"go/token"
	"io"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/processional/processional/internal/wire"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/registry"
)

// Remote objects. A worker holds the objects its masters made on it (by a
// constructor, or as a method's result asked for as a reference) in a
// table, by id. Each holder (a master, or another worker that received a
// reference) has a count of the references it was granted: one per reply
// that handed it a reference, one per acquire. A holder releases what it
// was granted, in batches; an object whose last holder released it, closed,
// or lapsed is dropped from the table and, if it is an io.Closer, closed
// once no call runs on it any more.
//
// The operations on objects are calls like any other, under reserved
// function names that start with '@': they keep the order of a master's
// blocking calls, run concurrently as thread calls, honour deadlines and
// cancellation.

// object is one entry of the worker's table.
type object struct {
	id       uint64
	v        reflect.Value // addressable when the object is not a pointer, so that pointer methods and field sets work
	typ      string
	created  time.Time
	holders  map[string]int64 // holder id → references granted and not released
	inflight int64            // operations running on it
	dropped  bool             // out of the table: close it once inflight is 0
	owned    bool             // made for the table (a constructor's or a method's result): closed when released
	secret   uint64           // drawn at random: a reference must carry it (wire.ObjectRef.Secret)
}

type ptrKey struct {
	p uintptr
	t reflect.Type
}

// ObjectInfo describes an object a worker holds, for introspection.
type ObjectInfo struct {
	ID       uint64           `json:"id"`
	Type     string           `json:"type"`
	Holders  map[string]int64 `json:"holders"` // holder id → references it holds
	Age      time.Duration    `json:"-"`
	AgeMS    int64            `json:"age_ms"`
	InFlight int64            `json:"inflight"` // operations running on it now
}

// Objects lists the objects the worker holds, by id.
func (w *Worker) Objects() []ObjectInfo {
	w.objMu.Lock()
	out := make([]ObjectInfo, 0, len(w.objects))
	now := time.Now()
	for _, o := range w.objects {
		h := make(map[string]int64, len(o.holders))
		for k, v := range o.holders {
			h[k] = v
		}
		age := now.Sub(o.created)
		out = append(out, ObjectInfo{ID: o.id, Type: o.typ, Holders: h, Age: age, AgeMS: age.Milliseconds(), InFlight: o.inflight})
	}
	w.objMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Keep puts obj in the worker's table on behalf of holder, granting holder
// one reference to it, and returns the reference. The same pointer kept
// twice is one object with two grants. A master exports its own objects
// with it; a nil obj is refused.
func (w *Worker) Keep(obj any, holder string) (wire.ObjectRef, error) {
	return w.keep(reflect.ValueOf(obj), holder)
}

func (w *Worker) keep(v reflect.Value, holder string) (wire.ObjectRef, error) {
	return w.keepOwned(v, holder, false)
}

// keepOwned is keep; owned says that the table owns the object: a
// constructor's or a method's result, which it closes (io.Closer) when it
// drops it. A field's or an item's value, an exported object, an object
// received back belong to someone else, and are never closed.
func (w *Worker) keepOwned(v reflect.Value, holder string, owned bool) (wire.ObjectRef, error) {
	if !v.IsValid() {
		return wire.ObjectRef{}, fmt.Errorf("%w: nil: there is no object to refer to", bus.ErrObjectGone)
	}
	for v.Kind() == reflect.Interface && !v.IsNil() {
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface, reflect.Func, reflect.Chan:
		if v.IsNil() {
			return wire.ObjectRef{}, fmt.Errorf("%w: a nil %s: there is no object to refer to", bus.ErrObjectGone, v.Type())
		}
	}
	if err := w.lockForGrant(holder); err != nil {
		return wire.ObjectRef{}, err
	}
	defer w.objMu.Unlock()
	var key ptrKey
	if v.Kind() == reflect.Pointer {
		key = ptrKey{v.Pointer(), v.Type()}
		if o := w.byPtr[key]; o != nil {
			if o.dropped {
				// Dropped, but a call still runs on it, which handed it
				// out again: it is back in the table, and not closed.
				o.dropped = false
				w.objects[o.id] = o
			}
			o.owned = o.owned || owned
			o.holders[holder]++
			return o.ref(w.id), nil
		}
	}
	if v.Kind() != reflect.Pointer && !v.CanAddr() {
		p := reflect.New(v.Type())
		p.Elem().Set(v)
		v = p.Elem()
	}
	w.nextObj++
	o := &object{id: w.nextObj, v: v, typ: v.Type().String(), created: time.Now(), holders: map[string]int64{holder: 1}, owned: owned, secret: newSecret()}
	if w.objects == nil {
		w.objects = make(map[uint64]*object)
		w.byPtr = make(map[ptrKey]*object)
	}
	w.objects[o.id] = o
	if key.t != nil {
		w.byPtr[key] = o
	}
	return o.ref(w.id), nil
}

// ref is the reference to o that the worker hands out.
func (o *object) ref(worker string) wire.ObjectRef {
	return wire.ObjectRef{Worker: worker, ID: o.id, Type: o.typ, Secret: o.secret}
}

// newSecret draws an object's secret.
func newSecret() uint64 {
	var b [8]byte
	rand.Read(b[:]) // crypto/rand never fails on Linux
	return binary.LittleEndian.Uint64(b[:])
}

// forged is the error of a reference that does not carry its object's
// secret: made up, or kept from an object since released and replaced.
func (w *Worker) forged(o *object, master string) error {
	return fmt.Errorf("%w: a reference to %s %d on worker %s from master %s does not carry the object's secret", bus.ErrNotHolder, o.typ, o.id, w.id, master)
}

// lockForGrant locks w.objMu, unless holder is gone: a master that closed
// or lapsed must not be granted references it will never release.
func (w *Worker) lockForGrant(holder string) error {
	w.mu.Lock()
	if g, ok := w.gone[holder]; ok && time.Now().Before(g.until) {
		w.mu.Unlock()
		return fmt.Errorf("%w: master %s let go of worker %s", bus.ErrClosed, holder, w.id)
	}
	w.objMu.Lock() // under w.mu: a holder that lapses now waits for this grant, then drops it
	w.mu.Unlock()
	return nil
}

// grant gives holder one more reference to o, unless o was dropped.
func (w *Worker) grant(o *object, holder string) error {
	if err := w.lockForGrant(holder); err != nil {
		return err
	}
	defer w.objMu.Unlock()
	if o.dropped {
		return fmt.Errorf("%w: %s %d was released", bus.ErrObjectGone, o.typ, o.id)
	}
	o.holders[holder]++
	return nil
}

// pin finds the object ref names and counts one more operation on it.
func (w *Worker) pin(raw []byte, master string) (*object, error) {
	id, secret, err := wire.RefID(raw, w.id)
	if err != nil {
		return nil, fmt.Errorf("the target of an object operation: %w", err)
	}
	w.objMu.Lock()
	defer w.objMu.Unlock()
	o := w.objects[id]
	if o == nil {
		r, _ := wire.DecodeRef(raw)
		return nil, fmt.Errorf("%w: %s was released", bus.ErrObjectGone, r)
	}
	if o.secret != secret {
		return nil, w.forged(o, master)
	}
	o.inflight++
	return o, nil
}

func (w *Worker) unpin(o *object) {
	w.objMu.Lock()
	o.inflight--
	last := o.dropped && o.inflight == 0
	if last {
		w.forgetPtrLocked(o)
	}
	w.objMu.Unlock()
	if last {
		closeObject(o)
	}
}

// Object returns the object of id the worker holds, if it holds it: a
// pointer to it when it is not a pointer itself.
func (w *Worker) Object(id uint64) (any, bool) {
	w.objMu.Lock()
	defer w.objMu.Unlock()
	if o := w.objects[id]; o != nil {
		if o.v.Kind() != reflect.Pointer && o.v.CanAddr() {
			return o.v.Addr().Interface(), true
		}
		return o.v.Interface(), true
	}
	return nil, false
}

// release drops n of holder's references to object id.
func (w *Worker) release(holder string, id uint64, n int64) {
	w.objMu.Lock()
	o := w.objects[id]
	if o == nil || o.holders[holder] == 0 {
		w.objMu.Unlock()
		return
	}
	o.holders[holder] -= n
	if o.holders[holder] > 0 {
		w.objMu.Unlock()
		return
	}
	delete(o.holders, holder)
	var idle []*object
	if len(o.holders) == 0 {
		idle = w.dropLocked(o, idle)
	}
	w.objMu.Unlock()
	w.closeObjects(idle)
}

// dropHolder drops every reference holder holds: it closed, or its lease
// lapsed. The objects it leaves with no holder are closed on a goroutine of
// their own: the caller may hold w.mu.
func (w *Worker) dropHolder(holder string) {
	var idle []*object
	w.objMu.Lock()
	for _, o := range w.objects {
		if _, ok := o.holders[holder]; !ok {
			continue
		}
		delete(o.holders, holder)
		if len(o.holders) == 0 {
			idle = w.dropLocked(o, idle)
		}
	}
	w.objMu.Unlock()
	if len(idle) > 0 {
		w.closers.Add(1)
		go func() {
			defer w.closers.Done()
			w.closeObjects(idle)
		}()
	}
}

// dropAll drops every object, as the worker closes.
func (w *Worker) dropAll() {
	var idle []*object
	w.objMu.Lock()
	for _, o := range w.objects {
		idle = w.dropLocked(o, idle)
	}
	w.objMu.Unlock()
	w.closeObjects(idle)
}

// dropLocked takes o out of the table, and appends it to idle if no
// operation runs on it; w.objMu held.
func (w *Worker) dropLocked(o *object, idle []*object) []*object {
	delete(w.objects, o.id)
	o.dropped = true
	if o.inflight == 0 {
		// Otherwise it stays known by its pointer until its last call
		// ends: a call that hands it out again brings it back.
		w.forgetPtrLocked(o)
		idle = append(idle, o)
	}
	return idle
}

// forgetPtrLocked removes o from the pointer index; w.objMu held.
func (w *Worker) forgetPtrLocked(o *object) {
	if o.v.Kind() == reflect.Pointer {
		key := ptrKey{o.v.Pointer(), o.v.Type()}
		if w.byPtr[key] == o {
			delete(w.byPtr, key)
		}
	}
}

// pinArg pins an object passed as an argument of cl, until cl ends. cl's
// master must hold a reference to it.
func (w *Worker) pinArg(cl *call, r wire.ObjectRef) (any, error) {
	w.objMu.Lock()
	defer w.objMu.Unlock()
	o := w.objects[r.ID]
	if o == nil {
		return nil, fmt.Errorf("%w: %s was released", bus.ErrObjectGone, r)
	}
	if cl != nil && o.secret != r.Secret {
		return nil, w.forged(o, cl.key.master)
	}
	if cl != nil {
		if o.holders[cl.key.master] == 0 {
			return nil, w.notHeld(o, cl.key.master)
		}
		o.inflight++
		cl.pinned = append(cl.pinned, o)
	}
	if o.v.Kind() != reflect.Pointer && o.v.CanAddr() {
		return o.v.Addr().Interface(), nil
	}
	return o.v.Interface(), nil
}

// pinTarget pins the object an operation of cl works on, until cl ends,
// as its arguments' objects are (see unpinArgs). cl's master must hold a
// reference to it.
func (w *Worker) pinTarget(cl *call, raw []byte) (*object, error) {
	return w.pinHeld(cl, raw, cl.key.master)
}

// pinHeld pins the object raw names for cl, if holder holds a reference to
// it, and fails with bus.ErrNotHolder otherwise.
func (w *Worker) pinHeld(cl *call, raw []byte, holder string) (*object, error) {
	o, err := w.pin(raw, cl.key.master)
	if err != nil {
		return nil, err
	}
	cl.pinned = append(cl.pinned, o)
	w.objMu.Lock()
	held := o.holders[holder] > 0
	w.objMu.Unlock()
	if !held {
		return nil, w.notHeld(o, holder)
	}
	return o, nil
}

// notHeld is the error of a master using a reference it does not hold.
func (w *Worker) notHeld(o *object, holder string) error {
	if holder == "" {
		return fmt.Errorf("%w: %s %d on worker %s: a reference passed on with no holder", bus.ErrNotHolder, o.typ, o.id, w.id)
	}
	return fmt.Errorf("%w: master %s holds no reference to %s %d on worker %s", bus.ErrNotHolder, holder, o.typ, o.id, w.id)
}

// unpinArgs lets go of the objects cl's target and arguments pinned.
func (w *Worker) unpinArgs(cl *call) {
	for _, o := range cl.pinned {
		w.unpin(o)
	}
	cl.pinned = nil
}

func (w *Worker) closeObjects(objs []*object) {
	for _, o := range objs {
		closeObject(o)
	}
}

// closeObject closes a dropped object that the table owns and that is an
// io.Closer.
func closeObject(o *object) {
	if !o.owned {
		return
	}
	v := o.v
	if v.Kind() != reflect.Pointer && v.CanAddr() {
		v = v.Addr()
	}
	c, ok := v.Interface().(io.Closer)
	if !ok {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			slog.Error("processional: closing a released object panicked", "type", o.typ, "panic", r)
		}
	}()
	if err := c.Close(); err != nil {
		slog.Debug("processional: closing a released object", "type", o.typ, "err", err)
	}
}

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
// one of ours that t cannot hold), for a parameter of interface type t.
// It binds to whatever the program makes of a reference in an interface:
// a *master.Ref where the program links package master, whose decoder
// msgpack then holds. A binding that t cannot hold is let go of.
func (w *Worker) bindInterface(r wire.ObjectRef, raw []byte, t reflect.Type) (reflect.Value, error) {
	refuse := fmt.Errorf("got a reference to %s, which a %s cannot hold: declare the parameter as *master.Ref to receive a working reference", r, t)
	var v any
	if err := codec.UnmarshalWith(raw, &v, w.peer); err != nil || v == nil {
		if err != nil && !strings.Contains(err.Error(), "unknown ext") {
			return reflect.Value{}, err
		}
		return reflect.Value{}, refuse
	}
	rv := reflect.ValueOf(v)
	if !rv.Type().Implements(t) {
		if c, ok := v.(io.Closer); ok {
			c.Close()
		}
		return reflect.Value{}, refuse
	}
	return rv, nil
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
