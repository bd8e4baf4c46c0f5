package serve

// The objects and helpers of the tests of the object table
// (objects_internal_test.go), its operations (ops_internal_test.go) and
// the reflection on its objects (members_internal_test.go). They need no
// NATS server: an operation is called as the worker's call loop calls it,
// through invoke, with its argument encoded as a master encodes it.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

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

// keepOwned keeps obj as a constructor's result: the table owns it, and
// closes it when it drops it.
func keepOwned(w *Worker, obj any, holder string) (wire.ObjectRef, error) {
	return w.keepOwned(reflect.ValueOf(obj), holder, true)
}

func mustObject(t *testing.T, w *Worker, id uint64) any {
	t.Helper()
	obj, ok := w.Object(id)
	if !ok {
		t.Fatalf("no object %d", id)
	}
	return obj
}
