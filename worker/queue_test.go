package worker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/processional/processional/internal/wire"
)

// TestOrder sends many blocking calls from one master without waiting:
// they run one at a time, in the order sent.
func TestOrder(t *testing.T) {
	h := start(t)
	key, log := newLog(t)
	in := h.inbox(t)
	const n = 50
	for i := range n {
		c := wire.Call{Kind: wire.KindCall, ID: uint64(i), Function: "worker_test.record", ArgType: "worker_test.recordArg"}
		if i == n/2 {
			// A call that wants no reply keeps its place all the same.
			if err := h.nc.Publish(h.subject(), encodeCall(t, wire.Call{Kind: wire.KindCall, Master: master, ID: 1000, Function: "worker_test.record"},
				recordArg{Key: key, I: -1})); err != nil {
				t.Fatal(err)
			}
		}
		in.send(t, c, recordArg{Key: key, I: i, Sleep: time.Millisecond})
	}
	for i := range n {
		r := in.next(t)
		if r.id != uint64(i) {
			t.Fatalf("reply %d arrived as number %d: blocking calls replied out of order", r.id, i)
		}
		if got := decode[int](t, r.raw, r.re); got != i {
			t.Fatalf("reply %d = %d", r.id, got)
		}
	}
	order, maxActive := log.snapshot()
	want := make([]int, 0, n+1)
	for i := range n {
		if i == n/2 {
			want = append(want, -1)
		}
		want = append(want, i)
	}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("calls ran in the order %v, want %v", order, want)
	}
	if maxActive != 1 {
		t.Errorf("%d blocking calls from one master ran at once, want 1", maxActive)
	}
}

// TestConcurrent checks what runs at the same time: each case's calls
// meet at a barrier that opens only when all of them are running, and
// fail at their deadline otherwise.
func TestConcurrent(t *testing.T) {
	type send struct {
		kind   wire.Kind
		master string
	}
	for _, tc := range []struct {
		name  string
		calls []send
	}{
		{"threads", []send{{wire.KindThread, master}, {wire.KindThread, master}, {wire.KindThread, master}, {wire.KindThread, master}, {wire.KindThread, master}}},
		{"threads beside a blocking call", []send{{wire.KindCall, master}, {wire.KindThread, master}, {wire.KindThread, master}, {wire.KindThread, master}}},
		{"blocking calls of several masters", []send{{wire.KindCall, "m-a"}, {wire.KindCall, "m-b"}, {wire.KindCall, "m-c"}}},
		{"threads of several masters", []send{{wire.KindThread, "m-a"}, {wire.KindThread, "m-b"}, {wire.KindCall, "m-a"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t)
			in := h.inbox(t)
			key := newBarrier(t, len(tc.calls))
			for i, s := range tc.calls {
				in.send(t, wire.Call{Kind: s.kind, Master: s.master, ID: uint64(i), Function: "worker_test.barrier", Timeout: 5 * time.Second}, key)
			}
			for range tc.calls {
				r := in.next(t)
				if r.re != nil {
					t.Fatalf("call %d: %v: the calls did not run at the same time", r.id, r.re)
				}
				if got := decode[int](t, r.raw, r.re); got != len(tc.calls) {
					t.Fatalf("call %d = %d", r.id, got)
				}
			}
		})
	}
	// And the contrary: two blocking calls of one master never meet.
	t.Run("blocking calls of one master", func(t *testing.T) {
		h := start(t)
		in := h.inbox(t)
		key := newBarrier(t, 2)
		for i := range 2 {
			in.send(t, wire.Call{Kind: wire.KindCall, ID: uint64(i), Function: "worker_test.barrier", Timeout: 200 * time.Millisecond}, key)
		}
		for range 2 {
			if r := in.next(t); !is(r.re, context.DeadlineExceeded) {
				t.Fatalf("call %d: %v, %v, want DeadlineExceeded: they ran at the same time", r.id, r.raw, r.re)
			}
		}
	})
}

// TestManyCalls mixes kinds and masters under load.
func TestManyCalls(t *testing.T) {
	h := start(t)
	in := h.inbox(t)
	const n = 400
	masters := []string{"m-1", "m-2", "m-3", "m-4"}
	for i := range n {
		kind := wire.KindCall
		if i%3 == 0 {
			kind = wire.KindThread
		}
		in.send(t, wire.Call{Kind: kind, Master: masters[i%len(masters)], ID: uint64(i), Function: "worker_test.sum"}, []int{i, i})
	}
	seen := make(map[uint64]bool)
	for range n {
		r := in.next(t)
		if got := decode[int](t, r.raw, r.re); got != 2*int(r.id) {
			t.Fatalf("call %d = %d", r.id, got)
		}
		if seen[r.id] {
			t.Fatalf("two replies to call %d", r.id)
		}
		seen[r.id] = true
	}
	in.none(t, 50*time.Millisecond)
}

func TestCancel(t *testing.T) {
	for _, kind := range []wire.Kind{wire.KindCall, wire.KindThread} {
		t.Run("running "+kind.String(), func(t *testing.T) {
			h := start(t)
			in := h.inbox(t)
			key, g := newGate(t)
			in.send(t, wire.Call{Kind: kind, ID: 7, Function: "worker_test.block"}, key)
			g.waitStarted(t)
			// A cancel of another master's call of the same id, or of an
			// id that does not run, changes nothing.
			h.control(t, wire.KindCancel, "m-other", 7)
			h.control(t, wire.KindCancel, master, 8)
			in.none(t, 50*time.Millisecond)
			h.control(t, wire.KindCancel, master, 7)
			r := in.next(t)
			if r.id != 7 || !is(r.re, context.Canceled) {
				t.Fatalf("reply %d: %v, want context.Canceled", r.id, r.re)
			}
			select {
			case err := <-g.ended:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("the function's context ended with %v, want context.Canceled", err)
				}
			case <-time.After(timeout):
				t.Fatal("the function did not return")
			}
		})
	}

	t.Run("queued call", func(t *testing.T) {
		h := start(t)
		in := h.inbox(t)
		key1, g1 := newGate(t)
		key2, g2 := newGate(t)
		in.send(t, wire.Call{Kind: wire.KindCall, ID: 1, Function: "worker_test.block"}, key1)
		in.send(t, wire.Call{Kind: wire.KindCall, ID: 2, Function: "worker_test.block"}, key2)
		g1.waitStarted(t)
		h.control(t, wire.KindCancel, master, 2)
		if err := h.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		// Let the cancel reach the worker before the first call ends.
		in.none(t, 50*time.Millisecond)
		g1.open()
		if r := in.next(t); r.id != 1 || decode[string](t, r.raw, r.re) != "released" {
			t.Fatalf("reply %d: %v", r.id, r.re)
		}
		if r := in.next(t); r.id != 2 || !is(r.re, context.Canceled) {
			t.Fatalf("reply %d: %v, want context.Canceled", r.id, r.re)
		}
		if g2.hasStarted() {
			t.Error("the cancelled queued call ran")
		}
	})

	t.Run("cancel after the reply", func(t *testing.T) {
		h := start(t)
		h.call(t, wire.Call{ID: 5, Function: "worker_test.echo"}, "x")
		h.control(t, wire.KindCancel, master, 5)
		if got := callAs[string](t, h, wire.Call{ID: 5, Function: "worker_test.echo"}, "again"); got != "again" {
			t.Fatalf("echo after a late cancel = %q", got)
		}
	})
}

func TestTimeout(t *testing.T) {
	h := start(t)
	for _, kind := range []wire.Kind{wire.KindCall, wire.KindThread} {
		for _, tc := range []struct {
			timeout time.Duration
			min     time.Duration // the deadline is at least this far when the function runs
		}{
			{time.Second, 500 * time.Millisecond},
			{time.Hour, time.Hour - 5*time.Second},
			{365 * 24 * time.Hour, 365*24*time.Hour - 5*time.Second},
		} {
			t.Run(fmt.Sprint(kind, "/", tc.timeout), func(t *testing.T) {
				got := callAs[time.Duration](t, h, wire.Call{Kind: kind, ID: 1, Function: "worker_test.deadline", Timeout: tc.timeout}, struct{}{})
				if got > tc.timeout || got < tc.min {
					t.Fatalf("time left before the deadline = %v, want in [%v, %v]", got, tc.min, tc.timeout)
				}
			})
		}
		t.Run(fmt.Sprint(kind, "/expires"), func(t *testing.T) {
			key, g := newGate(t)
			start := time.Now()
			_, re := h.call(t, wire.Call{Kind: kind, ID: 2, Function: "worker_test.block", Timeout: 50 * time.Millisecond}, key)
			if !is(re, context.DeadlineExceeded) {
				t.Fatalf("reply %v, want context.DeadlineExceeded", re)
			}
			if d := time.Since(start); d < 50*time.Millisecond {
				t.Errorf("the call ended after %v, before its deadline", d)
			}
			if err := <-g.ended; !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the function's context ended with %v", err)
			}
		})
	}
}
