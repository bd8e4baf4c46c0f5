package master

import "testing"

func TestPendingSet(t *testing.T) {
	var ps pendingSet
	call := func() pendingCall { return newTask[int]("x") }
	left := map[uint64]pendingCall{}
	// One call stays pending while many come and go: it moves to the
	// overflow map and the slice stays bounded.
	firstCall := call()
	first := ps.add(firstCall)
	for i := range 3 * maxSpan {
		c := call()
		id := ps.add(c)
		if i%3 == 0 {
			left[id] = c // left pending for now
			continue
		}
		if got := ps.take(id); got != c {
			t.Fatalf("take(%d) = %v, want %v", id, got, c)
		}
		if got := ps.take(id); got != nil {
			t.Fatalf("second take(%d) = %v, want nil", id, got)
		}
		if len(ps.ring) > maxSpan || ps.span > maxSpan {
			t.Fatalf("ring grew to %d, spanning %d", len(ps.ring), ps.span)
		}
	}
	if ps.live != len(left)+1 {
		t.Fatalf("live = %d, want %d", ps.live, len(left)+1)
	}
	if got := ps.take(first); got != firstCall {
		t.Fatalf("take(first) = %v from overflow, want %v", got, firstCall)
	}
	if ps.take(1<<40) != nil || ps.take(0) != nil {
		t.Fatal("take of an unknown id returned a call")
	}
	rest, ids := ps.drain()
	if len(rest) != len(left) || len(ids) != len(left) || ps.live != 0 {
		t.Fatalf("drain returned %d calls and %d ids, want %d", len(rest), len(ids), len(left))
	}
	for i, id := range ids {
		if left[id] != rest[i] {
			t.Fatalf("drain paired id %d with another call", id)
		}
	}
	// Ids keep growing after a drain: a late reply never meets a new call.
	if id := ps.add(call()); id <= 3*maxSpan {
		t.Fatalf("id after drain = %d, reused", id)
	}
}
