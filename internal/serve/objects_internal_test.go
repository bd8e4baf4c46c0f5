package serve

// Unit tests of the remote objects layer (objects.go) that need no NATS
// server: the operations are called as the worker's call loop calls them,
// through invoke, with their argument encoded as a master encodes it.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
)

const (
	tWorker = "w-test"
	tMaster = "m-test"
)

// gadget is the object most tests call into.
type gadget struct {
	N     int
	Name  string
	Tags  []string
	Inner part
	Grid  [3]int
	Any   any
	hits  int
	ctx   context.Context // the context the last method that takes one got
}

type part struct{ X int }

// sealed has no exported field.
type sealed struct{ secret int }

// resource counts its closes.
type resource struct{ closes atomic.Int32 }

func (r *resource) Close() error { r.closes.Add(1); return nil }

// blocker holds a call on it until told to go on.
type blocker struct {
	started chan struct{}
	proceed chan struct{}
}

func (b *blocker) Hold(r *resource) int32 {
	close(b.started)
	<-b.proceed
	return r.closes.Load()
}

// withFunc cannot be copied to a master.
type withFunc struct{ F func() }

var errGadget = errors.New("gadget: division by zero")

func (g *gadget) add(n int) int                         { g.N += n; g.hits++; return g.N }
func (g *gadget) Add(n int) int                         { return g.add(n) }
func (g gadget) Get() int                               { return g.N }
func (g *gadget) Reset()                                { g.N = 0 }
func (g *gadget) Pair() (int, string)                   { return 7, "seven" }
func (g *gadget) Self() *gadget                         { return g }
func (g *gadget) Child(n int) *gadget                   { return &gadget{N: n} }
func (g *gadget) Boom()                                 { panic("gadget: boom") }
func (g *gadget) Same(o *gadget) bool                   { return o == g }
func (g *gadget) Nothing() any                          { return nil }
func (g *gadget) Take(v any) any                        { return v }
func (g *gadget) Peek(o gadget) int                     { return o.N }
func (g *gadget) Show(s fmt.Stringer) string            { return s.String() }
func (g *gadget) Label(prefix string, xs ...int) string { return fmt.Sprint(prefix, xs) }

func (g *gadget) Div(d int) (int, error) {
	if d == 0 {
		return 0, errGadget
	}
	return g.N / d, nil
}

func (g *gadget) Check(ok bool) error {
	if ok {
		return nil
	}
	return errGadget
}

func (g *gadget) Sum(xs ...int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func (g *gadget) CtxErr(ctx context.Context) string {
	g.ctx = ctx
	if err := ctx.Err(); err != nil {
		return err.Error()
	}
	return ""
}

func (g *gadget) Scale(ctx context.Context, k int) int { g.ctx = ctx; return g.N * k }

func (g *gadget) Span(ctx context.Context, xs ...int) int { g.ctx = ctx; return len(xs) }

// Opener returns an io.Closer: a *resource, or a typed nil one.
func (g *gadget) Opener(open bool) io.Closer {
	if open {
		return &resource{}
	}
	var r *resource
	return r
}

// A constructor for @wrap; a negative n makes a nil *gadget.
var _ = bus.RegisterConstructor("worker_internal_test.newGadget", func(_ context.Context, n int) (*gadget, error) {
	if n < 0 {
		return nil, nil
	}
	return &gadget{N: n}, nil
})

func newTestWorker() *Worker { return &Worker{id: tWorker, gone: map[string]goneMaster{}} }

// enc encodes v as the master encodes values; a msgpack.RawMessage is
// copied as it is.
func enc(t testing.TB, v any) msgpack.RawMessage {
	t.Helper()
	b, err := codec.Marshal(v)
	if err != nil {
		t.Fatalf("encode %#v: %v", v, err)
	}
	return b
}

// refTo encodes a reference to object id of w.
// refTo is a reference to object id of w, with its secret (none for an
// object w does not hold).
func refTo(w *Worker, id uint64) msgpack.RawMessage {
	return wire.AppendRef(nil, wire.ObjectRef{Worker: w.id, ID: id, Type: "test-type", Secret: secretOf(w, id)})
}

func secretOf(w *Worker, id uint64) uint64 {
	w.objMu.Lock()
	defer w.objMu.Unlock()
	if o := w.objects[id]; o != nil {
		return o.secret
	}
	return 0
}

func keepT(t testing.TB, w *Worker, obj any, holder string) uint64 {
	t.Helper()
	r, err := keepOwned(w, obj, holder)
	if err != nil {
		t.Fatalf("Keep(%T, %s): %v", obj, holder, err)
	}
	if r.Worker != w.id || r.ID == 0 {
		t.Fatalf("Keep(%T) = %+v", obj, r)
	}
	return r.ID
}

// opCall builds the call of operation name, from master, with arg encoded.
func opCall(t testing.TB, master, name string, arg any) *call {
	t.Helper()
	op := ops[name]
	if op == nil {
		t.Fatalf("no operation %s", name)
	}
	return &call{key: callKey{master, 1}, name: name, op: op, arg: enc(t, arg)}
}

func run(t testing.TB, w *Worker, name string, arg any) (any, error) {
	t.Helper()
	return w.invoke(opCall(t, tMaster, name, arg))
}

func callArgOf(t testing.TB, w *Worker, id uint64, method string, wantRef bool, args []any) callArg {
	t.Helper()
	a := callArg{Target: refTo(w, id), Method: method, WantRef: wantRef, Args: []msgpack.RawMessage{}}
	for _, x := range args {
		a.Args = append(a.Args, enc(t, x))
	}
	return a
}

func callM(t testing.TB, w *Worker, id uint64, method string, args ...any) (any, error) {
	t.Helper()
	return run(t, w, "@call", callArgOf(t, w, id, method, false, args))
}

func callRef(t testing.TB, w *Worker, master string, id uint64, method string, args ...any) (any, error) {
	t.Helper()
	return w.invoke(opCall(t, master, "@call", callArgOf(t, w, id, method, true, args)))
}

func getF(t testing.TB, w *Worker, id uint64, name any, wantRef bool) (any, error) {
	t.Helper()
	return run(t, w, "@get", memberArg{Target: refTo(w, id), Key: enc(t, name), WantRef: wantRef})
}

func setF(t testing.TB, w *Worker, id uint64, name, v any) error {
	t.Helper()
	_, err := run(t, w, "@set", setArg{Target: refTo(w, id), Key: enc(t, name), Value: enc(t, v)})
	return err
}

func index(t testing.TB, w *Worker, id uint64, key any, wantRef bool) (any, error) {
	t.Helper()
	return run(t, w, "@index", memberArg{Target: refTo(w, id), Key: enc(t, key), WantRef: wantRef})
}

func setIndex(t testing.TB, w *Worker, id uint64, key, v any) error {
	t.Helper()
	_, err := run(t, w, "@setindex", setArg{Target: refTo(w, id), Key: enc(t, key), Value: enc(t, v)})
	return err
}

// wantErr checks that err matches sentinel and mentions every word.
func wantErr(t testing.TB, err, sentinel error, words ...string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want %v", err, sentinel)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func wantResult(t testing.TB, res any, err error, want any) {
	t.Helper()
	if err != nil {
		t.Fatalf("err = %v, want result %#v", err, want)
	}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("result = %#v (%T), want %#v (%T)", res, res, want, want)
	}
}

func wantRef(t testing.TB, w *Worker, res any, err error, typ string) wire.ObjectRef {
	t.Helper()
	if err != nil {
		t.Fatalf("err = %v, want a reference", err)
	}
	r, ok := res.(wire.ObjectRef)
	if !ok {
		t.Fatalf("result = %#v (%T), want a wire.ObjectRef", res, res)
	}
	if r.Worker != w.id || r.Type != typ {
		t.Fatalf("reference %+v, want worker %s, type %s", r, w.id, typ)
	}
	return r
}

// info returns what Objects reports of object id.
func info(w *Worker, id uint64) (ObjectInfo, bool) {
	for _, o := range w.Objects() {
		if o.ID == id {
			return o, true
		}
	}
	return ObjectInfo{}, false
}

func wantHolders(t testing.TB, w *Worker, id uint64, want map[string]int64) {
	t.Helper()
	o, ok := info(w, id)
	if !ok {
		t.Fatalf("object %d not in the table; want holders %v", id, want)
	}
	if !reflect.DeepEqual(o.Holders, want) {
		t.Fatalf("holders of object %d = %v, want %v", id, o.Holders, want)
	}
}

func TestObjectsPointerMethods(t *testing.T) {
	w := newTestWorker()
	g := &gadget{N: 1}
	id := keepT(t, w, g, tMaster)
	res, err := callM(t, w, id, "Add", 2)
	wantResult(t, res, err, 3)
	if g.N != 3 || g.hits != 1 {
		t.Fatalf("the kept pointer has N %d, hits %d; want 3, 1", g.N, g.hits)
	}
	res, err = callM(t, w, id, "Get") // a value receiver, through the pointer
	wantResult(t, res, err, 3)
	if o, _ := info(w, id); o.Type != "*serve.gadget" || o.InFlight != 0 {
		t.Fatalf("info = %+v", o)
	}
}

func TestObjectsKeptValueIsAddressable(t *testing.T) {
	w := newTestWorker()
	v := gadget{N: 1}
	id := keepT(t, w, v, tMaster)
	if o, _ := info(w, id); o.Type != "serve.gadget" {
		t.Fatalf("type %q, want serve.gadget", o.Type)
	}
	res, err := callM(t, w, id, "Add", 2) // a pointer method on a value
	wantResult(t, res, err, 3)
	res, err = getF(t, w, id, "N", false)
	wantResult(t, res, err, 3)
	if err := setF(t, w, id, "N", 10); err != nil {
		t.Fatal(err)
	}
	res, err = callM(t, w, id, "Get")
	wantResult(t, res, err, 10)
	res, err = getF(t, w, id, "N", false)
	wantResult(t, res, err, 10)
	obj, ok := w.Object(id)
	if p, _ := obj.(*gadget); !ok || p == nil || p.N != 10 || p.hits != 1 {
		t.Fatalf("Object(%d) = %#v, %v; want a *gadget with N 10", id, obj, ok)
	}
	if v.N != 1 {
		t.Fatalf("the caller's value changed to %d: Keep must copy a value", v.N)
	}
}

func TestObjectsMethodErrors(t *testing.T) {
	w := newTestWorker()
	g := keepT(t, w, &gadget{}, tMaster)
	bare := keepT(t, w, &part{}, tMaster)
	for _, tc := range []struct {
		name     string
		target   uint64
		method   string
		args     []any
		sentinel error
		words    []string
	}{
		{"unknown", g, "Nope", nil, bus.ErrNoMember, []string{`"Nope"`, "*serve.gadget", "its methods: Add, Boom, Check", "Sum", "Take"}},
		{"unexported", g, "add", []any{1}, bus.ErrNoMember, []string{`"add"`, "*serve.gadget", "not exported"}},
		{"empty name", g, "", nil, bus.ErrNoMember, []string{"not exported"}},
		{"no methods at all", bare, "Add", nil, bus.ErrNoMember, []string{"*serve.part", `"Add"`, "it has no exported methods"}},
		{"too few", g, "Add", nil, bus.ErrArgumentType, []string{"(*serve.gadget).Add takes 1 arguments (int), got 0"}},
		{"too many", g, "Add", []any{1, 2}, bus.ErrArgumentType, []string{"takes 1 arguments (int), got 2"}},
		{"none taken", g, "Reset", []any{1}, bus.ErrArgumentType, []string{"Reset takes 0 arguments (none), got 1"}},
		{"context not counted", g, "Scale", nil, bus.ErrArgumentType, []string{"Scale takes 1 arguments (int), got 0"}},
		{"variadic too few", g, "Label", nil, bus.ErrArgumentType, []string{"Label takes at least 1 arguments (string, ...int), got 0"}},
		{"wrong type", g, "Add", []any{"x"}, bus.ErrArgumentType, []string{"(*serve.gadget).Add argument 1 (int)"}},
		{"wrong first type", g, "Label", []any{1}, bus.ErrArgumentType, []string{"Label argument 1 (string)"}},
		{"wrong variadic type", g, "Label", []any{"p", 1, "x"}, bus.ErrArgumentType, []string{"Label argument 3 (int)"}},
		{"wrong type after context", g, "Scale", []any{"x"}, bus.ErrArgumentType, []string{"Scale argument 1 (int)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := callM(t, w, tc.target, tc.method, tc.args...)
			wantErr(t, err, tc.sentinel, tc.words...)
			if strings.Contains(err.Error(), "context.Context") {
				t.Errorf("error %q lists the context, which the caller does not send", err)
			}
		})
	}
}

func TestObjectsVariadic(t *testing.T) {
	w := newTestWorker()
	id := keepT(t, w, &gadget{}, tMaster)
	for _, tc := range []struct {
		method string
		args   []any
		want   any
	}{
		{"Sum", nil, 0},
		{"Sum", []any{5}, 5},
		{"Sum", []any{1, 2, 3, 4}, 10},
		{"Label", []any{"p"}, "p[]"},
		{"Label", []any{"p", 1}, "p[1]"},
		{"Label", []any{"p", 1, 2, 3}, "p[1 2 3]"},
		{"Span", nil, 0},
		{"Span", []any{1, 2}, 2},
	} {
		res, err := callM(t, w, id, tc.method, tc.args...)
		if err != nil || !reflect.DeepEqual(res, tc.want) {
			t.Errorf("%s%v = %#v, %v; want %#v", tc.method, tc.args, res, err, tc.want)
		}
	}
}

func TestObjectsContextParameter(t *testing.T) {
	w := newTestWorker()
	g := &gadget{N: 2}
	id := keepT(t, w, g, tMaster)

	cl := opCall(t, tMaster, "@call", callArgOf(t, w, id, "Scale", false, []any{3}))
	res, err := w.invoke(cl)
	wantResult(t, res, err, 6)
	if g.ctx != context.Context(&cl.ctx) {
		t.Fatalf("Scale got context %v, want the call's", g.ctx)
	}

	cl = opCall(t, tMaster, "@call", callArgOf(t, w, id, "CtxErr", false, nil))
	res, err = w.invoke(cl)
	wantResult(t, res, err, "")

	cl = opCall(t, tMaster, "@call", callArgOf(t, w, id, "CtxErr", false, nil))
	cl.cancel(context.Canceled)
	res, err = w.invoke(cl)
	wantResult(t, res, err, context.Canceled.Error())
	if g.ctx != context.Context(&cl.ctx) {
		t.Fatalf("CtxErr got context %v, want the call's", g.ctx)
	}
}

func TestObjectsResults(t *testing.T) {
	w := newTestWorker()
	id := keepT(t, w, &gadget{N: 8}, tMaster)
	for _, tc := range []struct {
		method string
		args   []any
		want   any
		err    error
	}{
		{"Reset", nil, nil, nil},
		{"Add", []any{8}, 8, nil},
		{"Pair", nil, []any{7, "seven"}, nil},
		{"Div", []any{2}, 4, nil},
		{"Div", []any{0}, nil, errGadget},
		{"Check", []any{true}, nil, nil},
		{"Check", []any{false}, nil, errGadget},
		{"Nothing", nil, nil, nil},
	} {
		res, err := callM(t, w, id, tc.method, tc.args...)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || res != nil {
				t.Errorf("%s%v = %#v, %v; want error %v", tc.method, tc.args, res, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(res, tc.want) {
			t.Errorf("%s%v = %#v, %v; want %#v", tc.method, tc.args, res, err, tc.want)
		}
	}
}

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

func TestObjectsFields(t *testing.T) {
	w := newTestWorker()
	g := &gadget{N: 4, Name: "g", hits: 9}
	id := keepT(t, w, g, tMaster)
	slice := keepT(t, w, []int{1}, tMaster)
	mp := keepT(t, w, map[string]int{}, tMaster)
	hidden := keepT(t, w, &sealed{secret: 1}, tMaster)
	var nilGadget *gadget
	pnil := keepT(t, w, &nilGadget, tMaster)

	res, err := getF(t, w, id, "N", false)
	wantResult(t, res, err, 4)
	res, err = getF(t, w, id, "Name", false)
	wantResult(t, res, err, "g")
	if err := setF(t, w, id, "N", 7); err != nil {
		t.Fatal(err)
	}
	if err := setF(t, w, id, "Tags", []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := setF(t, w, id, "Any", "s"); err != nil {
		t.Fatal(err)
	}
	if g.N != 7 || !reflect.DeepEqual(g.Tags, []string{"a", "b"}) || g.Any != "s" {
		t.Fatalf("after the sets: %+v", g)
	}

	// A field as a reference is the field itself: a set through it sticks.
	res, err = getF(t, w, id, "Inner", true)
	inner := wantRef(t, w, res, err, "serve.part")
	if err := setF(t, w, inner.ID, "X", 3); err != nil {
		t.Fatal(err)
	}
	if g.Inner.X != 3 {
		t.Fatalf("set through a field reference: Inner.X = %d, want 3", g.Inner.X)
	}

	for _, tc := range []struct {
		name     string
		do       func() error
		sentinel error
		words    []string
	}{
		{"get unexported", func() error { _, err := getF(t, w, id, "hits", false); return err },
			bus.ErrNoMember, []string{`"hits"`, "*serve.gadget", "not exported"}},
		{"get missing", func() error { _, err := getF(t, w, id, "Nope", false); return err },
			bus.ErrNoMember, []string{`"Nope"`, "*serve.gadget", "its fields: N, Name, Tags, Inner, Grid, Any"}},
		{"get missing, no exported fields", func() error { _, err := getF(t, w, hidden, "Secret", false); return err },
			bus.ErrNoMember, []string{`"Secret"`, "it has no exported fields"}},
		{"set unexported", func() error { return setF(t, w, id, "hits", 1) },
			bus.ErrNoMember, []string{`"hits"`, "not exported"}},
		{"set missing", func() error { return setF(t, w, id, "Nope", 1) },
			bus.ErrNoMember, []string{`"Nope"`, "its fields"}},
		{"set wrong type", func() error { return setF(t, w, id, "N", "x") },
			bus.ErrArgumentType, []string{"field N of *serve.gadget is a int"}},
		{"set wrong slice type", func() error { return setF(t, w, id, "Tags", 3) },
			bus.ErrArgumentType, []string{"field Tags of *serve.gadget is a []string"}},
		{"name not a string", func() error { _, err := getF(t, w, id, 3, false); return err },
			bus.ErrBadPayload, []string{"a field name"}},
		{"field of a slice", func() error { _, err := getF(t, w, slice, "X", false); return err },
			bus.ErrNoMember, []string{"[]int is a slice, not a struct"}},
		{"field of a map", func() error { return setF(t, w, mp, "X", 1) },
			bus.ErrNoMember, []string{"map[string]int is a map, not a struct"}},
		{"field through a nil pointer", func() error { _, err := getF(t, w, pnil, "N", false); return err },
			bus.ErrNoMember, []string{"**serve.gadget is nil"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.do(), tc.sentinel, tc.words...)
		})
	}
	if g.N != 7 || g.hits != 9 {
		t.Fatalf("a failed set changed the object: %+v", g)
	}
}

func TestObjectsItems(t *testing.T) {
	w := newTestWorker()

	m := map[string]int{"one": 1}
	mid := keepT(t, w, m, tMaster)
	res, err := index(t, w, mid, "one", false)
	wantResult(t, res, err, 1)
	if err := setIndex(t, w, mid, "two", 2); err != nil {
		t.Fatal(err)
	}
	if m["two"] != 2 {
		t.Fatalf("map set did not stick: %v", m)
	}

	var nm map[string]int
	nid := keepT(t, w, &nm, tMaster)

	s := []int{10, 20, 30}
	sid := keepT(t, w, s, tMaster)
	res, err = index(t, w, sid, 1, false)
	wantResult(t, res, err, 20)
	if err := setIndex(t, w, sid, 1, 21); err != nil {
		t.Fatal(err)
	}
	if s[1] != 21 {
		t.Fatalf("slice set did not stick: %v", s)
	}

	// An array in a struct, through a pointer to it, and as a field
	// reference.
	g := &gadget{}
	aid := keepT(t, w, &g.Grid, tMaster)
	if err := setIndex(t, w, aid, 2, 9); err != nil {
		t.Fatal(err)
	}
	res, err = index(t, w, aid, 2, false)
	wantResult(t, res, err, 9)
	gid := keepT(t, w, g, tMaster)
	res, err = getF(t, w, gid, "Grid", true)
	grid := wantRef(t, w, res, err, "[3]int")
	if err := setIndex(t, w, grid.ID, 0, 5); err != nil {
		t.Fatal(err)
	}
	if g.Grid != [3]int{5, 0, 9} {
		t.Fatalf("Grid = %v, want [5 0 9]", g.Grid)
	}

	// An item as a reference is the item itself.
	gs := []gadget{{N: 1}, {N: 2}}
	gsid := keepT(t, w, gs, tMaster)
	res, err = index(t, w, gsid, 1, true)
	item := wantRef(t, w, res, err, "serve.gadget")
	res, err = callM(t, w, item.ID, "Add", 5)
	wantResult(t, res, err, 7)
	if gs[1].N != 7 {
		t.Fatalf("a call through an item reference did not stick: %+v", gs)
	}

	str := keepT(t, w, "hey", tMaster)
	res, err = index(t, w, str, 1, false)
	wantResult(t, res, err, uint8('e'))

	none := keepT(t, w, &gadget{}, tMaster)
	var nilSlice *[]int
	pnil := keepT(t, w, &nilSlice, tMaster)

	for _, tc := range []struct {
		name     string
		do       func() error
		sentinel error
		words    []string
	}{
		{"map missing key", func() error { _, err := index(t, w, mid, "three", false); return err },
			bus.ErrNoItem, []string{"map[string]int has no key three"}},
		{"map wrong key type", func() error { _, err := index(t, w, mid, 5, false); return err },
			bus.ErrArgumentType, []string{"the keys of map[string]int are string"}},
		{"map set wrong key type", func() error { return setIndex(t, w, mid, 5, 1) },
			bus.ErrArgumentType, []string{"the keys of map[string]int are string"}},
		{"map set wrong value type", func() error { return setIndex(t, w, mid, "x", "y") },
			bus.ErrArgumentType, []string{"the items of map[string]int are int"}},
		{"nil map set", func() error { return setIndex(t, w, nid, "a", 1) },
			bus.ErrNoItem, []string{"*map[string]int is a nil map"}},
		{"nil map get", func() error { _, err := index(t, w, nid, "a", false); return err },
			bus.ErrNoItem, []string{"no key a"}},
		{"slice out of range", func() error { _, err := index(t, w, sid, 3, false); return err },
			bus.ErrNoItem, []string{"index 3 out of range [0, 3) of []int"}},
		{"slice negative", func() error { _, err := index(t, w, sid, -1, false); return err },
			bus.ErrNoItem, []string{"index -1 out of range [0, 3)"}},
		{"slice set out of range", func() error { return setIndex(t, w, sid, 5, 1) },
			bus.ErrNoItem, []string{"index 5 out of range [0, 3)"}},
		{"slice wrong index type", func() error { _, err := index(t, w, sid, "x", false); return err },
			bus.ErrArgumentType, []string{"[]int is indexed by an int"}},
		{"slice set wrong value type", func() error { return setIndex(t, w, sid, 0, "x") },
			bus.ErrArgumentType, []string{"the items of []int are int"}},
		{"array out of range", func() error { _, err := index(t, w, aid, 3, false); return err },
			bus.ErrNoItem, []string{"index 3 out of range [0, 3) of *[3]int"}},
		{"string set", func() error { return setIndex(t, w, str, 0, 'x') },
			bus.ErrNoItem, []string{"the items of string cannot be set"}},
		{"string out of range", func() error { _, err := index(t, w, str, 3, false); return err },
			bus.ErrNoItem, []string{"[0, 3) of string"}},
		{"no items", func() error { _, err := index(t, w, none, 0, false); return err },
			bus.ErrNoMember, []string{"*serve.gadget is a struct: it has no items"}},
		{"set no items", func() error { return setIndex(t, w, none, 0, 1) },
			bus.ErrNoMember, []string{"it has no items"}},
		{"through a nil pointer", func() error { _, err := index(t, w, pnil, 0, false); return err },
			bus.ErrNoItem, []string{"**[]int is nil"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, tc.do(), tc.sentinel, tc.words...)
		})
	}
	if !reflect.DeepEqual(m, map[string]int{"one": 1, "two": 2}) || !reflect.DeepEqual(s, []int{10, 21, 30}) {
		t.Fatalf("a failed set changed a container: %v %v", m, s)
	}
}

func TestObjectsReferenceArguments(t *testing.T) {
	w := newTestWorker()
	g := &gadget{N: 1}
	id := keepT(t, w, g, tMaster)
	other := keepT(t, w, gadget{N: 3}, tMaster)
	gone := keepT(t, w, &gadget{}, tMaster)
	w.release(tMaster, gone, 1)
	foreign := msgpack.RawMessage(wire.AppendRef(nil, wire.ObjectRef{Worker: "w-other", ID: id, Type: "*serve.gadget"}))

	res, err := callM(t, w, id, "Same", refTo(w, id))
	wantResult(t, res, err, true)
	res, err = callM(t, w, id, "Take", refTo(w, id))
	if err != nil || res != any(g) {
		t.Fatalf("Take(a reference to g) = %#v, %v; want g itself", res, err)
	}
	// A value object arrives as a pointer to the value the table holds, or
	// as a copy of it where the parameter is not a pointer.
	res, err = callM(t, w, id, "Take", refTo(w, other))
	if obj, _ := w.Object(other); err != nil || res != obj {
		t.Fatalf("Take(a reference to a value) = %#v, %v; want %p", res, err, obj)
	}
	res, err = callM(t, w, id, "Peek", refTo(w, other))
	wantResult(t, res, err, 3)
	// A set of a field, and of an item, decode references the same way.
	if err := setF(t, w, other, "Any", refTo(w, id)); err != nil {
		t.Fatal(err)
	}
	if obj, _ := w.Object(other); obj.(*gadget).Any != any(g) {
		t.Fatalf("Any = %#v, want g itself", obj.(*gadget).Any)
	}
	anyMap := map[string]any{}
	amid := keepT(t, w, anyMap, tMaster)
	if err := setIndex(t, w, amid, "g", refTo(w, id)); err != nil || anyMap["g"] != any(g) {
		t.Fatalf("set item to a reference: %v, %#v", err, anyMap)
	}

	_, err = callM(t, w, id, "Same", refTo(w, gone))
	wantErr(t, err, bus.ErrArgumentType, "Same argument 1 (*serve.gadget)", fmt.Sprintf("%d on worker %s was released", gone, w.id))
	_, err = w.decodeArg(nil, refTo(w, gone), reflect.TypeFor[*gadget]())
	wantErr(t, err, bus.ErrObjectGone, "was released")

	_, err = callM(t, w, id, "Take", foreign)
	wantErr(t, err, bus.ErrArgumentType, "Take argument 1 (interface {})", "on worker w-other", "declare the parameter as *master.Ref")
	_, err = callM(t, w, id, "Show", refTo(w, id)) // *gadget is no fmt.Stringer
	wantErr(t, err, bus.ErrArgumentType, "Show argument 1 (fmt.Stringer)", "*master.Ref")
	_, err = callM(t, w, id, "Add", foreign)
	wantErr(t, err, bus.ErrArgumentType, "Add argument 1 (int)")
	_, err = callM(t, w, id, "Same", msgpack.RawMessage{0xd4, byte(wire.RefExtType), 0}) // a reference with no body
	wantErr(t, err, bus.ErrArgumentType, "Same argument 1")

	// Plain values decode with no peer at all.
	v, err := w.decodeArg(nil, enc(t, []string{"a"}), reflect.TypeFor[[]string]())
	if err != nil || !reflect.DeepEqual(v.Interface(), []string{"a"}) {
		t.Fatalf("decodeArg = %v, %v", v, err)
	}
}

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

// Bugs found in objects.go. Each test shows the bug and skips while it is
// there; fixed, the test passes.

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

func TestObjectsReleasedArgumentLosesSentinel(t *testing.T) {
	w := newTestWorker()
	id := keepT(t, w, &gadget{}, tMaster)
	gone := keepT(t, w, &gadget{}, tMaster)
	w.release(tMaster, gone, 1)
	_, err := callM(t, w, id, "Same", refTo(w, gone))
	wantErr(t, err, bus.ErrArgumentType, "was released")
	if !errors.Is(err, bus.ErrObjectGone) {
		t.Fatalf("objects.go args wraps decodeArg's error with %%v, so a released reference passed as an argument "+
			"is not ErrObjectGone (sentinels on the wire: %v)", wire.NewRemoteError(w.id, "@call", err).Sentinels)
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

func TestObjectsArgumentNotPinned(t *testing.T) {
	w := newTestWorker()
	b := &blocker{started: make(chan struct{}), proceed: make(chan struct{})}
	bid := keepT(t, w, b, tMaster)
	r := &resource{}
	rid := keepT(t, w, r, tMaster)
	cl := opCall(t, tMaster, "@call", callArgOf(t, w, bid, "Hold", false, []any{refTo(w, rid)}))
	type result struct {
		res any
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := w.invoke(cl)
		done <- result{res, err}
	}()
	select {
	case <-b.started:
	case out := <-done:
		t.Fatalf("Hold returned before it started: %+v", out)
	}
	w.release(tMaster, rid, 1) // the last holder of r lets go while Hold uses it
	closedDuring := r.closes.Load()
	close(b.proceed)
	out := <-done
	if out.err != nil {
		t.Fatal(out.err)
	}
	if closedDuring != 0 {
		t.Fatalf("objects.go decodeArg hands a method an object of the table without pinning it, "+
			"so it is closed while the method still uses it (Hold saw %v closes)", out.res)
	}
	if r.closes.Load() != 1 {
		t.Fatalf("closes %d once Hold returned, want 1", r.closes.Load())
	}
}

func TestObjectsNilArgument(t *testing.T) {
	w := newTestWorker()
	g := &gadget{Any: "s"}
	id := keepT(t, w, g, tMaster)
	m := map[string]any{"k": "v"}
	mid := keepT(t, w, m, tMaster)
	// A master sends a nil argument, value or key as msgpack nil (0xc0).
	_, callErr := callM(t, w, id, "Take", nil)
	setErr := setF(t, w, id, "Any", nil)
	setIndexErr := setIndex(t, w, mid, "k", nil)
	if callErr != nil || setErr != nil || setIndexErr != nil {
		t.Fatalf("objects.go: msgpack decodes a nil element of the operation's array into a nil RawMessage, "+
			"which decodeArg cannot decode: a nil argument fails (%v), and so do a nil field set (%v) and a nil item set (%v)",
			callErr, setErr, setIndexErr)
	}
	if g.Any != nil || m["k"] != nil {
		t.Fatalf("after the nil sets: Any %#v, item %#v", g.Any, m["k"])
	}
}

// keepOwned keeps obj as a constructor's result: the table owns it, and
// closes it when it drops it.
func keepOwned(w *Worker, obj any, holder string) (wire.ObjectRef, error) {
	return w.keepOwned(reflect.ValueOf(obj), holder, true)
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

func mustObject(t *testing.T, w *Worker, id uint64) any {
	t.Helper()
	obj, ok := w.Object(id)
	if !ok {
		t.Fatalf("no object %d", id)
	}
	return obj
}
