package serve

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

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
