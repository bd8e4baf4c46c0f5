package master_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
	"github.com/processional/processional/worker"
)

// Counter is a stateful object that lives on a worker.
type Counter struct {
	mu    sync.Mutex
	N     int
	Name  string
	Items map[string]int
	List  []string
	hits  int
	Hook  func() // cannot travel
	held  *master.Ref
}

func (c *Counter) Add(d int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.N += d
	return c.N
}

func (c *Counter) AddAll(ds ...int) int {
	for _, d := range ds {
		c.Add(d)
	}
	return c.N
}

func (c *Counter) Div(d int) (int, error) {
	if d == 0 {
		return 0, errors.New("division by zero")
	}
	return c.N / d, nil
}

func (c *Counter) Both() (int, string) { return c.N, c.Name }

func (c *Counter) PID() int { return os.Getpid() }

func (c *Counter) Wait(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Child returns a new counter, which stays on the worker when asked for
// as a reference.
func (c *Counter) Child(name string) *Counter { return &Counter{Name: name} }

// Same reports whether other is this very counter.
func (c *Counter) Same(other *Counter) bool { return other == c }

// Sum reads another counter through a reference, on whatever worker it
// lives.
func (c *Counter) Sum(ctx context.Context, other *master.Ref) (int, error) {
	n, err := master.Method[int](ctx, other, "Add", 0).Wait(ctx)
	return c.N + n, err
}

// Kind says how another counter given as an `any` arrived: as the counter
// itself ("object"), or as a reference ("ref"), whose N it reads.
func (c *Counter) Kind(ctx context.Context, other any) (string, error) {
	switch o := other.(type) {
	case *Counter:
		return "object", nil
	case *master.Ref:
		_, err := master.Field[int](ctx, o, "N")
		return "ref", err
	default:
		return "", fmt.Errorf("got a %T", other)
	}
}

func (c *Counter) Close() error {
	closedMu.Lock()
	closedNames = append(closedNames, c.Name)
	closedMu.Unlock()
	return nil
}

func (c *Counter) Boom() { panic("boom in a method") }

// Events returns a channel, which cannot travel.
func (c *Counter) Events() chan int { return make(chan int) }

// Hold keeps a reference to another object, as long as Drop is not called.
func (c *Counter) Hold(r *master.Ref) { c.held = r }

// Read takes an interface that neither a Counter nor a *master.Ref
// satisfies: a reference passed to it is refused before it is bound.
func (c *Counter) Read(r io.Reader) int { return 0 }

// Drop lets go of the reference Hold kept.
func (c *Counter) Drop() { c.held.Close() }

var (
	closedMu    sync.Mutex
	closedNames []string
)

var (
	NewCounter = bus.RegisterConstructor("test.newCounter", func(ctx context.Context, name string) (*Counter, error) {
		if name == "panic" {
			panic("constructor panicked")
		}
		return &Counter{Name: name, Items: map[string]int{"a": 1}, List: []string{"x", "y"}, Hook: func() {}}, nil
	})
	NewMap = bus.RegisterConstructor("test.newMap", func(ctx context.Context, _ struct{}) (map[string]int, error) {
		return map[string]int{"one": 1}, nil
	})
	// ClosedNames lists the counters closed on the worker.
	ClosedNames = bus.Register("test.closedNames", func(ctx context.Context, _ struct{}) ([]string, error) {
		closedMu.Lock()
		defer closedMu.Unlock()
		return append([]string{}, closedNames...), nil
	})
	// GC runs the worker's garbage collector.
	GC = bus.Register("test.gc", func(ctx context.Context, _ struct{}) (struct{}, error) {
		runtime.GC()
		return struct{}{}, nil
	})
	// UseRef calls a counter given as a reference, from a worker.
	UseRef = bus.Register("test.useRef", func(ctx context.Context, r *master.Ref) (int, error) {
		return master.Method[int](ctx, r, "Add", 10).Wait(ctx)
	})
	// UseAnyRefs adds 1 to each counter among xs, and to those among m's
	// values, and returns the last sum; any other value is an error.
	UseAnyRefs = bus.Register("test.useAnyRefs", func(ctx context.Context, args struct {
		Xs []any
		M  map[string]any
	}) (int, error) {
		n := 0
		for _, x := range append(args.Xs, args.M["ref"]) {
			r, ok := x.(*master.Ref)
			if !ok {
				return 0, fmt.Errorf("got a %T, want a *master.Ref", x)
			}
			var err error
			if n, err = master.Method[int](ctx, r, "Add", 1).Wait(ctx); err != nil {
				return 0, err
			}
		}
		return n, nil
	})
)

// refsOf asks worker id, over the bus, for the objects it holds.
func refsOf(t *testing.T, m *master.Master, id string) []worker.ObjectInfo {
	t.Helper()
	msg, err := m.Conn().Request(wire.ControlSubject(id, "refs"), nil, 5*time.Second)
	if err != nil {
		t.Fatalf("refs of %s: %v", id, err)
	}
	var out []worker.ObjectInfo
	if err := jsonUnmarshal(msg.Data, &out); err != nil {
		t.Fatalf("refs of %s: %v: %s", id, err, msg.Data)
	}
	return out
}

// waitEmpty waits until worker id holds no object.
func waitEmpty(t *testing.T, m *master.Master, id string) {
	t.Helper()
	waitRefs(t, m, id, "no object", nil, func(objs []worker.ObjectInfo) bool { return len(objs) == 0 })
}

// waitRefs waits until the objects worker id holds are as ok wants, and
// returns them; want says what that is, for the failure. A release goes
// to the worker on its own message, unanswered: what it holds is the
// only thing to watch. poke, when not nil, runs before each look (a
// garbage collection, for Refs that their cleanups release).
func waitRefs(t *testing.T, m *master.Master, id, want string, poke func(), ok func([]worker.ObjectInfo) bool) []worker.ObjectInfo {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if poke != nil {
			poke()
		}
		objs := refsOf(t, m, id)
		if ok(objs) {
			return objs
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %s holds %+v, want %s", id, objs, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRefReleasedWhenDropped(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()
	var refs []*master.Ref
	for i := range 100 {
		r, err := master.Wrap(ctx, s, NewCounter, fmt.Sprint("c", i))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	if n := len(refsOf(t, m, s.ID())); n != 100 {
		t.Fatalf("the worker holds %d objects, want 100", n)
	}
	// The same object reached twice is one object, released once both
	// Refs are closed.
	c1, err := refs[0].CallRef(ctx, "Child", "kid")
	if err != nil {
		t.Fatal(err)
	}
	refs = nil
	objs := waitRefs(t, m, s.ID(), "the child only, once 100 Refs were dropped", runtimeGC,
		func(objs []worker.ObjectInfo) bool { return len(objs) <= 1 })
	if len(objs) != 1 || objs[0].Type != "*master_test.Counter" {
		t.Fatalf("after dropping 100 Refs the worker holds %v, want the child only", objs)
	}
	c1.Close()
	waitEmpty(t, m, s.ID())
}

func TestRefArrivesAsTheObject(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()
	a, err := master.Wrap(ctx, s, NewCounter, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := master.Wrap(ctx, s, NewCounter, "b")
	if err != nil {
		t.Fatal(err)
	}
	if same, err := master.Method[bool](ctx, a, "Same", a).Wait(ctx); err != nil || !same {
		t.Fatalf("a.Same(a) = %v, %v", same, err)
	}
	if same, err := master.Method[bool](ctx, a, "Same", b).Wait(ctx); err != nil || same {
		t.Fatalf("a.Same(b) = %v, %v", same, err)
	}
	a.Close()
	b.Close()
	waitEmpty(t, m, s.ID())
}

func TestRefBetweenWorkers(t *testing.T) {
	m := newMaster(t)
	s1 := spawn(t, m)
	s2 := spawn(t, m)
	ctx := context.Background()
	c, err := master.Wrap(ctx, s1, NewCounter, "shared")
	if err != nil {
		t.Fatal(err)
	}
	// A function on s2 receives a working Ref to the counter on s1.
	if n, err := master.Invoke(ctx, s2, UseRef, c); err != nil || n != 10 {
		t.Fatalf("useRef on the other worker = %d, %v", n, err)
	}
	// In an `any`, on the other worker and on its own, it arrives as a
	// *master.Ref too.
	for _, on := range []*master.Slave{s2, s1} {
		args := struct {
			Xs []any
			M  map[string]any
		}{[]any{c, c}, map[string]any{"ref": c}}
		if _, err := master.Invoke(ctx, on, UseAnyRefs, args); err != nil {
			t.Fatalf("Refs in []any and map[string]any on worker %s: %v", on.ID(), err)
		}
	}
	if n, err := master.Field[int](ctx, c, "N"); err != nil || n != 16 {
		t.Fatalf("c.N = %d, %v; want 10 + 2×3", n, err)
	}
	// A method's `any` parameter takes the object itself on its own
	// worker, a working reference on another.
	for _, tc := range []struct {
		on   *master.Slave
		want string
	}{{s1, "object"}, {s2, "ref"}} {
		other, err := master.Wrap(ctx, tc.on, NewCounter, "other")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := master.Method[string](ctx, other, "Kind", c).Wait(ctx); err != nil || got != tc.want {
			t.Errorf("Kind(c) on worker %s = %q, %v; want %q", tc.on.ID(), got, err, tc.want)
		}
		other.Close()
	}
	// A method on s2 takes it as an argument.
	d, err := master.Wrap(ctx, s2, NewCounter, "d")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := master.Method[int](ctx, d, "Sum", c).Wait(ctx); err != nil || n != 16 {
		t.Fatalf("d.Sum(c) = %d, %v", n, err)
	}
	// d keeps a Ref to c: the master lets go of c, the object stays, held
	// by s2; it goes when d drops it.
	if _, err := d.Call(ctx, "Hold", c); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitRefs(t, m, s1.ID(), fmt.Sprintf("c, held by s2 (%s) only", s2.ID()), nil, func(objs []worker.ObjectInfo) bool {
		return len(objs) == 1 && objs[0].Holders[s2.ID()] >= 1 && objs[0].Holders[m.ID()] == 0
	})
	if _, err := d.Call(ctx, "Drop"); err != nil {
		t.Fatal(err)
	}
	// The Refs the functions received as arguments are let go by their
	// workers' garbage collectors: s2's, and s1's, which held its own
	// object through the Refs in an `any`.
	for _, s := range []*master.Slave{s2, s1} {
		if _, err := master.Invoke(ctx, s, GC, struct{}{}); err != nil {
			t.Fatal(err)
		}
	}
	waitEmpty(t, m, s1.ID())
	if names, err := master.Invoke(ctx, s1, ClosedNames, struct{}{}); err != nil || !slices.Contains(names, "shared") {
		t.Fatalf("closed on s1: %v, %v; want the shared counter closed", names, err)
	}
	d.Close()
	waitEmpty(t, m, s2.ID())
}

func TestRefReleasesAreBatched(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m, master.WithoutLane()) // to count the messages on its subject
	ctx := context.Background()
	var refs []*master.Ref
	for range 2000 {
		r, err := master.Wrap(ctx, s, NewCounter, "many")
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	var releases atomic.Int64
	sub, err := m.Conn().Subscribe(wire.CallSubject(s.ID()), func(msg *nats.Msg) {
		var c wire.Call
		if wire.DecodeCall(msg.Data, &c) == nil && c.Function == "@release" {
			releases.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	m.Conn().Flush()
	for _, r := range refs {
		r.Close()
	}
	waitEmpty(t, m, s.ID())
	if n := releases.Load(); n < 1 || n > 10 {
		t.Fatalf("2000 Refs closed at once sent %d release messages", n)
	}
	t.Logf("2000 Refs closed at once: %d release messages", releases.Load())
}

func TestRefOfDeadWorker(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()
	r, err := master.Wrap(ctx, s, NewCounter, "doomed")
	if err != nil {
		t.Fatal(err)
	}
	slow := master.Method[any](ctx, r, "Wait", time.Hour)
	s.Terminate()
	if _, err := slow.Wait(ctx); !errors.Is(err, bus.ErrWorkerLost) {
		t.Fatalf("a call in flight on a killed worker: %v", err)
	}
	if _, err := r.Call(ctx, "Add", 1); !errors.Is(err, bus.ErrWorkerLost) {
		t.Fatalf("a call on a Ref of a killed worker: %v", err)
	}
	r.Close()
}

func TestRefsVerbShowsInflight(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()
	r, err := master.Wrap(ctx, s, NewCounter, "busy")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	slow := master.ThreadMethod[any](ctx, r, "Wait", time.Hour)
	defer slow.Cancel()
	waitRefs(t, m, s.ID(), "one counter, held once by "+m.ID()+", one call in flight", nil, func(objs []worker.ObjectInfo) bool {
		return len(objs) == 1 && objs[0].InFlight == 1 && objs[0].Holders[m.ID()] == 1 && objs[0].Type == "*master_test.Counter"
	})
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

func runtimeGC() { runtime.GC() }

// TestRefDecodeErrors: a *Ref position holding something else says what it
// got; nil stays nil.
func TestRefDecodeErrors(t *testing.T) {
	var r *master.Ref
	if err := codec.Unmarshal([]byte{0xd4, 5, 0}, &r); !errors.Is(err, bus.ErrBadPayload) || !strings.Contains(err.Error(), "got extension 5") {
		t.Errorf("extension 5 into a *Ref: %v, want %v naming the extension", err, bus.ErrBadPayload)
	}
	r = &master.Ref{}
	if err := codec.Unmarshal([]byte{0xc0}, &r); err != nil || r != nil {
		t.Errorf("nil into a *Ref: %v, %v; want nil", r, err)
	}
	var x any
	ref := wire.AppendRef(nil, wire.ObjectRef{Worker: "w-1", ID: 1, Type: "T", Secret: 2})
	if err := codec.Unmarshal(ref, &x); !errors.Is(err, master.ErrBadCall) {
		t.Errorf("a reference into an any outside a call: %v, want %v", err, master.ErrBadCall)
	}
}

// A reference to a parameter whose interface a *master.Ref does not
// satisfy is refused, naming the fix, before it is bound: the owner sees
// no acquire, and a dead owner changes nothing in the answer.
func TestRefRefusedByInterface(t *testing.T) {
	m := newMaster(t)
	s1 := spawn(t, m)
	s2 := spawn(t, m)
	ctx := context.Background()
	c, err := master.Wrap(ctx, s1, NewCounter, "owned")
	if err != nil {
		t.Fatal(err)
	}
	d, err := master.Wrap(ctx, s2, NewCounter, "taker")
	if err != nil {
		t.Fatal(err)
	}
	refused := func(what string) {
		t.Helper()
		_, err := master.Method[int](ctx, d, "Read", c).Wait(ctx)
		if !errors.Is(err, bus.ErrArgumentType) || !strings.Contains(err.Error(), "cannot hold") || !strings.Contains(err.Error(), "*master.Ref") {
			t.Fatalf("%s: d.Read(c) = %v, want ErrArgumentType saying an io.Reader cannot hold it", what, err)
		}
	}
	refused("owner alive")
	if objs := refsOf(t, m, s1.ID()); len(objs) != 1 || objs[0].Holders[s2.ID()] != 0 {
		t.Fatalf("s1 holds %+v: want c, never acquired by s2 (%s)", objs, s2.ID())
	}
	if err := s1.Terminate(); err != nil {
		t.Fatal(err)
	}
	refused("owner dead")
}
