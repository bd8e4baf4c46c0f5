package serve

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sort"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// Remote objects. A worker holds the objects its masters made on it (by a
// constructor, or as a method's result asked for as a reference) in a
// table, by id. Each holder (a master, or another worker that received a
// reference) has a count of the references it was granted: one per reply
// that handed it a reference, one per acquire. A holder releases what it
// was granted, in batches; an object whose last holder released it, closed,
// or lapsed is dropped from the table and, if it is an io.Closer, closed
// once no call runs on it any more.

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
// their own, counted in w.closers, which Close awaits: the caller may hold
// w.mu.
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
		x := cl.rare()
		x.pinned = append(x.pinned, o)
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
	x := cl.rare()
	x.pinned = append(x.pinned, o)
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
	if cl.x == nil {
		return
	}
	for _, o := range cl.x.pinned {
		w.unpin(o)
	}
	cl.x.pinned = nil
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
