package serve

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
)

func TestObjectsKeepSamePointer(t *testing.T) {
	w := newTestWorker()
	r := &resource{}
	id := keepT(t, w, r, tMaster)
	if again := keepT(t, w, r, tMaster); again != id {
		t.Fatalf("the same pointer kept twice has ids %d and %d", id, again)
	}
	if n := len(w.Objects()); n != 1 {
		t.Fatalf("%d objects, want 1", n)
	}
	wantHolders(t, w, id, map[string]int64{tMaster: 2})
	keepT(t, w, r, "m-b")
	wantHolders(t, w, id, map[string]int64{tMaster: 2, "m-b": 1})

	w.release(tMaster, id, 1)
	wantHolders(t, w, id, map[string]int64{tMaster: 1, "m-b": 1})
	w.release("m-b", id, 1)
	wantHolders(t, w, id, map[string]int64{tMaster: 1})
	w.release("m-nobody", id, 1) // not a holder: nothing
	wantHolders(t, w, id, map[string]int64{tMaster: 1})
	if n := r.closes.Load(); n != 0 {
		t.Fatalf("closed %d times while held", n)
	}
	w.release(tMaster, id, 1)
	if _, ok := w.Object(id); ok || len(w.Objects()) != 0 {
		t.Fatalf("object %d still held after its last release: %+v", id, w.Objects())
	}
	w.release(tMaster, id, 1) // again: nothing
	if n := r.closes.Load(); n != 1 {
		t.Fatalf("closed %d times, want 1", n)
	}
	if again := keepT(t, w, r, tMaster); again == id {
		t.Fatalf("a dropped object's id %d was given again", id)
	}

	// Values are not pointers: each is an object of its own.
	a, b := keepT(t, w, gadget{}, tMaster), keepT(t, w, gadget{}, tMaster)
	if a == b {
		t.Fatalf("two values kept as one object %d", a)
	}
}

func TestObjectsCloseAfterInflight(t *testing.T) {
	w := newTestWorker()
	r := &resource{}
	id := keepT(t, w, r, tMaster)
	o, err := w.pin(refTo(w, id), tMaster)
	if err != nil {
		t.Fatal(err)
	}
	if i, _ := info(w, id); i.InFlight != 1 {
		t.Fatalf("inflight %d, want 1", i.InFlight)
	}
	w.release(tMaster, id, 1)
	if _, ok := w.Object(id); ok {
		t.Fatal("a released object is still in the table")
	}
	if _, err := w.pin(refTo(w, id), tMaster); !errors.Is(err, bus.ErrObjectGone) {
		t.Fatalf("pin of a released object: %v, want ErrObjectGone", err)
	}
	if n := r.closes.Load(); n != 0 {
		t.Fatalf("closed %d times while an operation runs on it", n)
	}
	w.unpin(o)
	if n := r.closes.Load(); n != 1 {
		t.Fatalf("closed %d times once the operation ended, want 1", n)
	}
}

func TestObjectsDropHolder(t *testing.T) {
	w := newTestWorker()
	a, b, c, d := &resource{}, &resource{}, &resource{}, &resource{}
	aid := keepT(t, w, a, "m-a")
	bid := keepT(t, w, b, "m-a")
	keepT(t, w, b, "m-b")
	cid := keepT(t, w, c, "m-b")
	did := keepT(t, w, d, "m-a")
	keepT(t, w, d, "m-a")
	o, err := w.pin(refTo(w, did), tMaster) // an operation runs on d
	if err != nil {
		t.Fatal(err)
	}

	w.dropHolder("m-a")
	w.closers.Wait()
	if a.closes.Load() != 1 || b.closes.Load() != 0 || c.closes.Load() != 0 || d.closes.Load() != 0 {
		t.Fatalf("closes a %d, b %d, c %d, d %d; want 1 0 0 0", a.closes.Load(), b.closes.Load(), c.closes.Load(), d.closes.Load())
	}
	for _, id := range []uint64{aid, did} {
		if _, ok := w.Object(id); ok {
			t.Fatalf("object %d, held by m-a only, is still in the table", id)
		}
	}
	wantHolders(t, w, bid, map[string]int64{"m-b": 1})
	wantHolders(t, w, cid, map[string]int64{"m-b": 1})
	w.unpin(o)
	if n := d.closes.Load(); n != 1 {
		t.Fatalf("d closed %d times once its operation ended, want 1", n)
	}

	w.dropHolder("m-nobody")
	w.dropHolder("m-b")
	w.closers.Wait()
	if b.closes.Load() != 1 || c.closes.Load() != 1 || len(w.Objects()) != 0 {
		t.Fatalf("closes b %d, c %d, objects %+v", b.closes.Load(), c.closes.Load(), w.Objects())
	}
	if a.closes.Load() != 1 || d.closes.Load() != 1 {
		t.Fatal("an object was closed twice")
	}
}

func TestObjectsDropAll(t *testing.T) {
	w := newTestWorker()
	a, b := &resource{}, &resource{}
	keepT(t, w, a, "m-a")
	keepT(t, w, b, "m-b")
	keepT(t, w, gadget{}, "m-b")
	w.dropAll()
	if a.closes.Load() != 1 || b.closes.Load() != 1 || len(w.Objects()) != 0 {
		t.Fatalf("closes a %d, b %d, objects %+v", a.closes.Load(), b.closes.Load(), w.Objects())
	}
}

func TestObjectsList(t *testing.T) {
	w := newTestWorker()
	if got := w.Objects(); got == nil || len(got) != 0 {
		t.Fatalf("Objects of an empty table = %#v, want empty", got)
	}
	start := time.Now()
	g := keepT(t, w, &gadget{}, tMaster)
	v := keepT(t, w, gadget{}, "m-b")
	r := keepT(t, w, &resource{}, tMaster)
	released := keepT(t, w, gadget{}, tMaster)
	w.release(tMaster, released, 1)
	twice := keepT(t, w, &resource{}, tMaster)
	s := keepT(t, w, "s", tMaster)
	_, err := run(t, w, "@acquire", struct {
		_msgpack struct{} `msgpack:",as_array"`
		Target   msgpack.RawMessage
	}{Target: refTo(w, twice)})
	if err != nil {
		t.Fatal(err)
	}
	o, err := w.pin(refTo(w, r), tMaster)
	if err != nil {
		t.Fatal(err)
	}
	defer w.unpin(o)

	got := w.Objects()
	want := []ObjectInfo{
		{ID: g, Type: "*serve.gadget", Holders: map[string]int64{tMaster: 1}},
		{ID: v, Type: "serve.gadget", Holders: map[string]int64{"m-b": 1}},
		{ID: r, Type: "*serve.resource", Holders: map[string]int64{tMaster: 1}, InFlight: 1},
		{ID: twice, Type: "*serve.resource", Holders: map[string]int64{tMaster: 2}},
		{ID: s, Type: "string", Holders: map[string]int64{tMaster: 1}},
	}
	if len(got) != len(want) {
		t.Fatalf("Objects = %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i].Age < 0 || got[i].Age > time.Since(start) || got[i].AgeMS != got[i].Age.Milliseconds() {
			t.Errorf("object %d: age %v, %d ms", got[i].ID, got[i].Age, got[i].AgeMS)
		}
		got[i].Age, got[i].AgeMS = 0, 0
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Objects = %+v, want %+v", got, want)
	}
	got[0].Holders[tMaster] = 99 // a copy: the table is untouched
	wantHolders(t, w, g, map[string]int64{tMaster: 1})
}

func TestObjectsKeepRefused(t *testing.T) {
	w := newTestWorker()
	for _, tc := range []struct {
		name  string
		obj   any
		words []string
	}{
		{"nil", nil, []string{"nil: there is no object"}},
		{"nil pointer", (*gadget)(nil), []string{"a nil *serve.gadget"}},
		{"nil map", map[string]int(nil), []string{"a nil map[string]int"}},
		{"nil slice", []int(nil), []string{"a nil []int"}},
		{"nil func", (func())(nil), []string{"a nil func()"}},
		{"nil chan", (chan int)(nil), []string{"a nil chan int"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := keepOwned(w, tc.obj, tMaster)
			wantErr(t, err, bus.ErrObjectGone, tc.words...)
		})
	}
	if n := len(w.Objects()); n != 0 {
		t.Fatalf("%d objects kept", n)
	}

	// A holder that let go of the worker gets no reference, until it is
	// forgotten.
	w.gone["m-gone"] = goneMaster{until: time.Now().Add(time.Hour)}
	w.gone["m-old"] = goneMaster{lapsed: true, until: time.Now().Add(-time.Second)}
	_, err := keepOwned(w, &gadget{}, "m-gone")
	wantErr(t, err, bus.ErrClosed, "master m-gone let go of worker w-test")
	if n := len(w.Objects()); n != 0 {
		t.Fatalf("%d objects kept for a gone holder", n)
	}
	keepT(t, w, &gadget{}, "m-old")
}

func TestObjectsRekeepWhileDroppedInFlight(t *testing.T) {
	w := newTestWorker()
	r := &resource{}
	id := keepT(t, w, r, tMaster)
	o, err := w.pin(refTo(w, id), tMaster) // an operation runs on r...
	if err != nil {
		t.Fatal(err)
	}
	w.release(tMaster, id, 1)           // ...as its last holder releases it...
	ref, kerr := keepOwned(w, r, "m-b") // ...and the same pointer is kept again
	w.unpin(o)                          // the operation ends
	_, held := w.Object(ref.ID)
	if kerr == nil && held && r.closes.Load() != 0 {
		t.Fatal("objects.go dropLocked deletes byPtr before a dropped object with operations in flight is closed, " +
			"so keep of the same pointer makes a new object, and unpin of the old one then closes the pointer the new one holds")
	}
	if kerr == nil && (!held || r.closes.Load() != 0) {
		t.Fatalf("object %d held %v, closes %d", ref.ID, held, r.closes.Load())
	}
}

func TestObjectsTypedNilInterfaceKept(t *testing.T) {
	w := newTestWorker()
	id := keepT(t, w, &gadget{}, tMaster)
	res, err := callRef(t, w, tMaster, id, "Opener", false)
	if err == nil {
		t.Fatalf("objects.go keep checks for nil before it unwraps an interface, so a typed nil pointer "+
			"in an interface result is kept: %+v, table %+v", res, w.Objects())
	}
	wantErr(t, err, bus.ErrObjectGone, "nil")
}

func TestObjectsNotOwnedNotClosed(t *testing.T) {
	w := newTestWorker()
	r := &resource{}
	ref, err := w.Keep(r, tMaster) // an exported object: someone else's
	if err != nil {
		t.Fatal(err)
	}
	w.release(tMaster, ref.ID, 1)
	w.closers.Wait()
	if r.closes.Load() != 0 {
		t.Fatalf("an object the table does not own was closed %d times", r.closes.Load())
	}
}
