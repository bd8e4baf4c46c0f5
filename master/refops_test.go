package master_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

func TestRefMethodsFieldsItems(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()

	r, err := master.Wrap(ctx, s, NewCounter, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Object().Type; got != "*master_test.Counter" {
		t.Errorf("type %q", got)
	}
	if n, err := master.Method[int](ctx, r, "Add", 5).Wait(ctx); err != nil || n != 5 {
		t.Fatalf("Add(5) = %d, %v", n, err)
	}
	if v, err := r.Call(ctx, "Add", 2); err != nil || fmt.Sprint(v) != "7" {
		t.Fatalf("Call Add(2) = %v, %v", v, err)
	}
	if n, err := master.Method[int](ctx, r, "AddAll", 1, 2, 3).Wait(ctx); err != nil || n != 13 {
		t.Fatalf("AddAll = %d, %v", n, err)
	}
	if pid, err := master.Method[int](ctx, r, "PID").Wait(ctx); err != nil || pid != s.PID() {
		t.Fatalf("PID = %d, %v; worker's is %d", pid, err, s.PID())
	}
	both, err := master.Method[[]any](ctx, r, "Both").Wait(ctx)
	if err != nil || len(both) != 2 || fmt.Sprint(both[1]) != "c1" {
		t.Fatalf("Both = %v, %v", both, err)
	}
	if _, err := master.Method[int](ctx, r, "Div", 0).Wait(ctx); err == nil || !strings.Contains(err.Error(), "division by zero") {
		t.Fatalf("Div(0): %v", err)
	}
	// Fields and items.
	if n, err := master.Field[int](ctx, r, "N"); err != nil || n != 13 {
		t.Fatalf("Field N = %d, %v", n, err)
	}
	if err := r.Set(ctx, "Name", "renamed"); err != nil {
		t.Fatal(err)
	}
	if v, err := r.Get(ctx, "Name"); err != nil || v != "renamed" {
		t.Fatalf("Get Name = %v, %v", v, err)
	}
	items, err := r.FieldRef(ctx, "Items")
	if err != nil {
		t.Fatal(err)
	}
	if err := items.SetIndex(ctx, "b", 2); err != nil {
		t.Fatal(err)
	}
	if n, err := master.Item[int](ctx, items, "b"); err != nil || n != 2 {
		t.Fatalf("Items[b] = %d, %v", n, err)
	}
	// The map is shared with the counter: the field sees the new key.
	if m2, err := master.Field[map[string]int](ctx, r, "Items"); err != nil || m2["b"] != 2 {
		t.Fatalf("Items = %v, %v", m2, err)
	}
	list, err := r.FieldRef(ctx, "List")
	if err != nil {
		t.Fatal(err)
	}
	if err := list.SetIndex(ctx, 1, "z"); err != nil {
		t.Fatal(err)
	}
	if v, err := list.Index(ctx, 1); err != nil || v != "z" {
		t.Fatalf("List[1] = %v, %v", v, err)
	}
	// Thread calls run beside a blocking one.
	slow := master.Method[any](ctx, r, "Wait", time.Second)
	if n, err := master.ThreadMethod[int](ctx, r, "Add", 0).Wait(ctx); err != nil || n != 13 {
		t.Fatalf("thread Add = %d, %v", n, err)
	}
	if slow.Available() {
		t.Error("the blocking Wait finished before the thread call")
	}
	slow.Cancel()
	// A deadline travels.
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = master.Method[any](dctx, r, "Wait", time.Hour).Wait(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past the deadline: %v", err)
	}
	for _, x := range []*master.Ref{r, items, list} {
		x.Close()
	}
	waitEmpty(t, m, s.ID())
}

func TestRefBadInput(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()
	r, err := master.Wrap(ctx, s, NewCounter, "c")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cases := []struct {
		name string
		err  error
		want []string
		do   func() error
	}{
		{"unknown method", bus.ErrNoMember, []string{"*master_test.Counter", `"Ad"`, "Add", "Div"}, func() error { _, err := r.Call(ctx, "Ad", 1); return err }},
		{"unexported method", bus.ErrNoMember, []string{"not exported"}, func() error { _, err := r.Call(ctx, "add", 1); return err }},
		{"too many arguments", bus.ErrArgumentType, []string{"Add", "takes 1 arguments (int), got 2"}, func() error { _, err := r.Call(ctx, "Add", 1, 2); return err }},
		{"wrong argument type", bus.ErrArgumentType, []string{"argument 1 (int)"}, func() error { _, err := r.Call(ctx, "Add", "one"); return err }},
		{"unknown field", bus.ErrNoMember, []string{`"Nope"`, "N, Name"}, func() error { _, err := r.Get(ctx, "Nope"); return err }},
		{"unexported field", bus.ErrNoMember, []string{`"hits"`, "not exported"}, func() error { _, err := r.Get(ctx, "hits"); return err }},
		{"wrong field type", bus.ErrArgumentType, []string{"field N", "int"}, func() error { return r.Set(ctx, "N", "x") }},
		{"no items", bus.ErrNoMember, []string{"no items"}, func() error { _, err := r.Index(ctx, 1); return err }},
		{"method panics", bus.ErrPanic, []string{"boom in a method"}, func() error { _, err := r.Call(ctx, "Boom"); return err }},
		{"unwrap a func field", bus.ErrEncode, []string{"Hook", "func"}, func() error { _, err := master.Unwrap[Counter](ctx, r); return err }},
		{"constructor panics", bus.ErrPanic, []string{"constructor panicked"}, func() error { _, err := master.Wrap(ctx, s, NewCounter, "panic"); return err }},
		{"result that cannot travel", bus.ErrEncode, []string{"chan int", "reference", "CallRef"}, func() error { _, err := r.Call(ctx, "Events"); return err }},
		{"result as a reference of two values", bus.ErrResultType, []string{"Both"}, func() error { _, err := r.CallRef(ctx, "Both"); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.do()
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
	mp, err := master.Wrap(ctx, s, NewMap, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mp.Index(ctx, "two"); !errors.Is(err, bus.ErrNoItem) || !strings.Contains(err.Error(), "two") {
		t.Errorf("missing key: %v", err)
	}
	if v, err := master.Unwrap[map[string]int](ctx, mp); err != nil || v["one"] != 1 {
		t.Errorf("Unwrap = %v, %v", v, err)
	}
	mp.Close()
	if _, err := mp.Index(ctx, "one"); !errors.Is(err, bus.ErrObjectGone) {
		t.Errorf("call through a closed Ref: %v", err)
	}
}
