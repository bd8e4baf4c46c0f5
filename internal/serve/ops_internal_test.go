package serve

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

func TestObjectsResultAsReference(t *testing.T) {
	w := newTestWorker()
	g := &gadget{N: 1}
	id := keepT(t, w, g, tMaster)
	const caller = "m-caller"
	keepT(t, w, g, caller) // the caller holds the parent too

	res, err := callRef(t, w, caller, id, "Child", 5)
	child := wantRef(t, w, res, err, "*serve.gadget")
	if child.ID == id {
		t.Fatalf("a new object got the id %d of its parent", id)
	}
	wantHolders(t, w, child.ID, map[string]int64{caller: 1})
	if obj, _ := w.Object(child.ID); obj.(*gadget).N != 5 {
		t.Fatalf("child = %#v", obj)
	}

	// The object itself, asked for as a reference, is the same object.
	res, err = callRef(t, w, caller, id, "Self")
	if r := wantRef(t, w, res, err, "*serve.gadget"); r.ID != id {
		t.Fatalf("Self as a reference has id %d, want %d", r.ID, id)
	}
	wantHolders(t, w, id, map[string]int64{tMaster: 1, caller: 2})

	// An int result is kept as an addressable int.
	res, err = callRef(t, w, caller, id, "Div", 1)
	n := wantRef(t, w, res, err, "int")
	if obj, _ := w.Object(n.ID); *obj.(*int) != 1 {
		t.Fatalf("Object(%d) = %#v, want a *int to 1", n.ID, obj)
	}

	// A result of interface type is kept as its dynamic type.
	res, err = callRef(t, w, caller, id, "Opener", true)
	wantRef(t, w, res, err, "*serve.resource")

	_, err = callRef(t, w, caller, id, "Pair")
	wantErr(t, err, bus.ErrResultType, "(*serve.gadget).Pair returns 2 values", "a reference is to one")
	_, err = callRef(t, w, caller, id, "Reset")
	wantErr(t, err, bus.ErrResultType, "Reset returns 0 values")
	_, err = callRef(t, w, caller, id, "Check", true)
	wantErr(t, err, bus.ErrResultType, "Check returns 0 values")
	_, err = callRef(t, w, caller, id, "Div", 0)
	if !errors.Is(err, errGadget) {
		t.Fatalf("Div(0) as a reference: %v, want the method's error", err)
	}
	_, err = callRef(t, w, caller, id, "Nothing")
	wantErr(t, err, bus.ErrObjectGone, "a nil interface {}: there is no object")
	if got := len(w.Objects()); got != 4 {
		t.Fatalf("%d objects, want 4: %+v", got, w.Objects())
	}
}

func TestObjectsAcquire(t *testing.T) {
	w := newTestWorker()
	id := keepT(t, w, &gadget{}, tMaster)
	acquireFrom := func(master, from string, id uint64) error {
		_, err := w.invoke(opCall(t, master, "@acquire", struct {
			_msgpack struct{} `msgpack:",as_array"`
			Target   msgpack.RawMessage
		}{Target: wire.AppendRef(nil, wire.ObjectRef{Worker: w.id, ID: id, Type: "test-type", Secret: secretOf(w, id), Holder: from})}))
		return err
	}
	acquire := func(master string, id uint64) error { return acquireFrom(master, tMaster, id) }
	// Only from a holder: not from one who does not hold it, nor with no
	// holder named, nor by naming oneself.
	wantErr(t, acquireFrom("m-b", "m-nobody", id), bus.ErrNotHolder, "master m-nobody holds no reference to *serve.gadget")
	wantErr(t, acquireFrom("m-b", "", id), bus.ErrNotHolder, "master m-b holds no reference")
	wantErr(t, acquireFrom("m-b", "m-b", id), bus.ErrNotHolder, "master m-b holds no reference")
	wantHolders(t, w, id, map[string]int64{tMaster: 1})
	if err := acquire("m-b", id); err != nil {
		t.Fatal(err)
	}
	if err := acquire("m-b", id); err != nil {
		t.Fatal(err)
	}
	wantHolders(t, w, id, map[string]int64{tMaster: 1, "m-b": 2})
	w.gone["m-gone"] = goneMaster{until: time.Now().Add(time.Hour)}
	wantErr(t, acquire("m-gone", id), bus.ErrClosed, "m-gone")
	wantHolders(t, w, id, map[string]int64{tMaster: 1, "m-b": 2})
	wantErr(t, acquire("m-b", id+1), bus.ErrObjectGone, "was released")

	// An acquire that pinned the object before its last release lost the
	// race: no grant on a dropped object.
	o, err := w.pin(refTo(w, id), tMaster)
	if err != nil {
		t.Fatal(err)
	}
	w.release(tMaster, id, 1)
	w.release("m-b", id, 2)
	wantErr(t, w.grant(o, "m-c"), bus.ErrObjectGone, "was released")
	w.unpin(o)
}

func TestObjectsReleaseOperation(t *testing.T) {
	w := newTestWorker()
	p, q, r := &resource{}, &resource{}, &resource{}
	pid := keepT(t, w, p, tMaster)
	keepT(t, w, p, tMaster)
	qid := keepT(t, w, q, tMaster)
	rid := keepT(t, w, r, tMaster)
	keepT(t, w, r, "m-b")

	release := func(master string, list any) error {
		_, err := w.invoke(opCall(t, master, "@release", list))
		return err
	}
	if err := release(tMaster, []uint64{pid, 1, qid, 0, rid, 1, 999, 3}); err != nil {
		t.Fatal(err)
	}
	wantHolders(t, w, pid, map[string]int64{tMaster: 1})
	wantHolders(t, w, qid, map[string]int64{tMaster: 1})
	wantHolders(t, w, rid, map[string]int64{"m-b": 1})
	if err := release("m-b", []uint64{pid, 5}); err != nil { // not its holder
		t.Fatal(err)
	}
	wantHolders(t, w, pid, map[string]int64{tMaster: 1})
	if err := release(tMaster, []uint64{pid, math.MaxUint64, qid, 1 << 63}); err != nil {
		t.Fatal(err)
	}
	if _, ok := w.Object(pid); ok || p.closes.Load() != 1 || q.closes.Load() != 1 {
		t.Fatalf("huge counts: objects %+v, closes p %d, q %d", w.Objects(), p.closes.Load(), q.closes.Load())
	}
	if err := release(tMaster, []uint64{}); err != nil {
		t.Fatal(err)
	}

	wantErr(t, release("m-b", []uint64{rid, 1, 7}), bus.ErrBadPayload, "@release", "an odd list of 3 numbers")
	wantHolders(t, w, rid, map[string]int64{"m-b": 1})
	wantErr(t, release("m-b", "x"), bus.ErrBadPayload, "@release")
	wantErr(t, release("m-b", []string{"a", "b"}), bus.ErrBadPayload, "@release")
	if r.closes.Load() != 0 {
		t.Fatal("a refused release closed an object")
	}
}

// Targets a master could not have sent, and payloads no master sends: a
// refusal, never a panic.
func TestObjectsCraftedTargets(t *testing.T) {
	w := newTestWorker()
	id := keepT(t, w, &gadget{}, tMaster)
	for _, tgt := range []struct {
		name string
		raw  msgpack.RawMessage
	}{
		{"an int", enc(t, 42)},
		{"a string", enc(t, w.id)},
		{"nil", enc(t, nil)},
		{"an array", enc(t, []any{w.id, id, "*serve.gadget"})},
		{"another extension", []byte{0xd4, 2, 0}},
		{"a reference with no body", []byte{0xd4, byte(wire.RefExtType), 0}},
		{"a reference to a bad worker id", wire.AppendRef(nil, wire.ObjectRef{Worker: "w test!", ID: id})},
		{"a reference to another worker", wire.AppendRef(nil, wire.ObjectRef{Worker: "w-other", ID: id})},
	} {
		for _, op := range []struct {
			name string
			arg  any
		}{
			{"@call", callArg{Target: tgt.raw, Method: "Get", Args: []msgpack.RawMessage{}}},
			{"@get", memberArg{Target: tgt.raw, Key: enc(t, "N")}},
			{"@set", setArg{Target: tgt.raw, Key: enc(t, "N"), Value: enc(t, 1)}},
			{"@index", memberArg{Target: tgt.raw, Key: enc(t, 0)}},
			{"@setindex", setArg{Target: tgt.raw, Key: enc(t, 0), Value: enc(t, 1)}},
			{"@unwrap", struct {
				_msgpack struct{} `msgpack:",as_array"`
				Target   msgpack.RawMessage
			}{Target: tgt.raw}},
			{"@acquire", struct {
				_msgpack struct{} `msgpack:",as_array"`
				Target   msgpack.RawMessage
			}{Target: tgt.raw}},
		} {
			t.Run(op.name+" on "+tgt.name, func(t *testing.T) {
				_, err := run(t, w, op.name, op.arg)
				if errors.Is(err, bus.ErrPanic) {
					t.Fatalf("panicked: %v", err)
				}
				wantErr(t, err, bus.ErrBadPayload)
			})
		}
	}
	_, err := run(t, w, "@get", memberArg{Target: wire.AppendRef(nil, wire.ObjectRef{Worker: "w-other", ID: id}), Key: enc(t, "N")})
	wantErr(t, err, bus.ErrBadPayload, "on worker w-other was sent to worker w-test")

	// An argument that is not the operation's array.
	for name := range ops {
		for _, arg := range [][]byte{nil, {0xc1}, {0x93, 1}, enc(t, "x")} {
			_, err := w.invoke(&call{key: callKey{tMaster, 1}, name: name, op: ops[name], arg: arg})
			if errors.Is(err, bus.ErrPanic) || !errors.Is(err, bus.ErrBadPayload) || !strings.Contains(err.Error(), name) {
				t.Errorf("%s of % x: %v, want ErrBadPayload naming it", name, arg, err)
			}
		}
		// msgpack decodes a struct kept as an array from a map too: the
		// fields are then missing, and the operation refuses that.
		arg := enc(t, map[string]int{"a": 1})
		if _, err := w.invoke(&call{key: callKey{tMaster, 1}, name: name, op: ops[name], arg: arg}); err == nil || errors.Is(err, bus.ErrPanic) {
			t.Errorf("%s of a map: %v, want a refusal", name, err)
		}
	}

	// A released target, or one never made.
	for _, tid := range []uint64{id + 100, 0} {
		_, err := callM(t, w, tid, "Get")
		wantErr(t, err, bus.ErrObjectGone, "was released")
		_, err = getF(t, w, tid, "N", false)
		wantErr(t, err, bus.ErrObjectGone)
		wantErr(t, setIndex(t, w, tid, 0, 1), bus.ErrObjectGone)
	}
	if o, _ := info(w, id); o.InFlight != 0 {
		t.Fatalf("inflight %d after refused operations", o.InFlight)
	}
}

func TestObjectsUnwrap(t *testing.T) {
	w := newTestWorker()
	unwrap := func(id uint64) (any, error) {
		return run(t, w, "@unwrap", struct {
			_msgpack struct{} `msgpack:",as_array"`
			Target   msgpack.RawMessage
		}{Target: refTo(w, id)})
	}
	g := &gadget{N: 3}
	res, err := unwrap(keepT(t, w, g, tMaster))
	if err != nil || res != any(g) {
		t.Fatalf("unwrap of a pointer = %#v, %v", res, err)
	}
	res, err = unwrap(keepT(t, w, part{X: 2}, tMaster))
	wantResult(t, res, err, part{X: 2})
	_, err = unwrap(keepT(t, w, &withFunc{F: func() {}}, tMaster))
	wantErr(t, err, bus.ErrEncode, "*serve.withFunc cannot be copied to the master", "func")
	_, err = unwrap(keepT(t, w, make(chan int), tMaster))
	wantErr(t, err, bus.ErrEncode, "chan int cannot be copied")
}

func TestObjectsWrap(t *testing.T) {
	w := newTestWorker()
	wrap := func(fn, argType string, arg any) (any, error) {
		return run(t, w, "@wrap", wrapArg{Function: fn, ArgType: argType, Arg: enc(t, arg)})
	}
	res, err := wrap("worker_internal_test.newGadget", "int", 4)
	r := wantRef(t, w, res, err, "*serve.gadget")
	wantHolders(t, w, r.ID, map[string]int64{tMaster: 1})
	if obj, _ := w.Object(r.ID); obj.(*gadget).N != 4 {
		t.Fatalf("wrapped object = %#v", obj)
	}
	_, err = wrap("worker_internal_test.nope", "int", 4)
	wantErr(t, err, bus.ErrUnknownFunction, `"worker_internal_test.nope"`, "w-test")
	_, err = wrap("worker_internal_test.newGadget", "string", "x")
	wantErr(t, err, bus.ErrArgumentType, "expects int, got string")
	_, err = wrap("worker_internal_test.newGadget", "int", -1)
	wantErr(t, err, bus.ErrObjectGone, "a nil *serve.gadget")
}

func TestObjectsPanic(t *testing.T) {
	w := newTestWorker()
	id := keepT(t, w, &gadget{}, tMaster)
	_, err := callM(t, w, id, "Boom")
	wantErr(t, err, bus.ErrPanic, "gadget: boom")
	if o, _ := info(w, id); o.InFlight != 0 {
		t.Fatalf("inflight %d after a panic", o.InFlight)
	}

	// A key Go cannot hash panics in reflect; invoke recovers it.
	mid := keepT(t, w, map[any]int{}, tMaster)
	_, err = index(t, w, mid, []int{1}, false)
	if !errors.Is(err, bus.ErrPanic) && !errors.Is(err, bus.ErrArgumentType) {
		t.Fatalf("index by an unhashable key: %v", err)
	}
	err = setIndex(t, w, mid, []int{1}, 1)
	if !errors.Is(err, bus.ErrPanic) && !errors.Is(err, bus.ErrArgumentType) {
		t.Fatalf("set by an unhashable key: %v", err)
	}
	if o, _ := info(w, mid); o.InFlight != 0 {
		t.Fatalf("inflight %d after a panic", o.InFlight)
	}
}

// TestObjectsNotHeld: a master uses only the references it holds: not
// another master's object as the target of an operation, nor as an
// argument, nor one it released.
func TestObjectsNotHeld(t *testing.T) {
	w := newTestWorker()
	mine := keepT(t, w, &gadget{N: 1}, tMaster)
	theirs := keepT(t, w, &gadget{N: 2}, "m-other")
	const intruder = "m-intruder"
	_, err := callRef(t, w, intruder, theirs, "Add", 1)
	wantErr(t, err, bus.ErrNotHolder, "master m-intruder holds no reference to *serve.gadget", "w-test")
	_, err = w.invoke(opCall(t, intruder, "@get", memberArg{Target: refTo(w, theirs), Key: enc(t, "N")}))
	wantErr(t, err, bus.ErrNotHolder, "m-intruder")
	_, err = w.invoke(opCall(t, intruder, "@unwrap", targetArg{Target: refTo(w, theirs)}))
	wantErr(t, err, bus.ErrNotHolder, "m-intruder")
	// A reference it does not hold, passed as an argument to a method of
	// an object it holds.
	_, err = callM(t, w, mine, "Same", refTo(w, theirs))
	wantErr(t, err, bus.ErrNotHolder, "master "+tMaster+" holds no reference")
	if obj, _ := w.Object(theirs); obj.(*gadget).N != 2 {
		t.Fatalf("the other master's object changed: %#v", obj)
	}
	// A reference that does not carry the object's secret, from a holder
	// or from someone naming one: made up, or listed by the refs verb.
	guessed := msgpack.RawMessage(wire.AppendRef(nil, wire.ObjectRef{Worker: w.id, ID: theirs, Type: "*serve.gadget", Secret: secretOf(w, theirs) + 1}))
	_, err = w.invoke(opCall(t, "m-other", "@get", memberArg{Target: guessed, Key: enc(t, "N")}))
	wantErr(t, err, bus.ErrNotHolder, "does not carry the object's secret")
	_, err = callM(t, w, mine, "Same", guessed)
	wantErr(t, err, bus.ErrNotHolder, "does not carry the object's secret")
	passed := wire.AppendRef(nil, wire.ObjectRef{Worker: w.id, ID: theirs, Type: "*serve.gadget", Holder: "m-other"})
	_, err = w.invoke(opCall(t, intruder, "@acquire", targetArg{Target: passed}))
	wantErr(t, err, bus.ErrNotHolder, "does not carry the object's secret")
	wantHolders(t, w, theirs, map[string]int64{"m-other": 1})
	// Its own, released: gone for it, though another holds it still.
	keepT(t, w, &gadget{}, intruder)
	if r, err := keepOwned(w, mustObject(t, w, theirs), intruder); err != nil || r.ID != theirs {
		t.Fatalf("keep: %v, %v", r, err)
	}
	w.release(intruder, theirs, 1)
	_, err = callRef(t, w, intruder, theirs, "Add", 1)
	wantErr(t, err, bus.ErrNotHolder, "m-intruder")
	for _, o := range w.Objects() {
		if o.InFlight != 0 {
			t.Fatalf("object %d left pinned: %+v", o.ID, o)
		}
	}
}
