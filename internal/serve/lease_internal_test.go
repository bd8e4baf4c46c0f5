package serve

import (
	"testing"
	"time"
)

// A time the worker did not run (stopped, starved of CPU) is not its
// masters' silence: the heartbeats that came meanwhile wait unread.
func TestStallIsNotSilence(t *testing.T) {
	t0 := time.Now()
	for _, tc := range []struct {
		stall time.Duration
		held  bool
	}{{0, false}, {2 * time.Second, true}} {
		w := newTestWorker()
		w.leases = map[string]*lease{tMaster: {length: time.Second, last: t0}}
		if tc.stall > 0 {
			w.stalled(tc.stall, t0.Add(2500*time.Millisecond))
		}
		w.expireLeases(t0.Add(2500 * time.Millisecond))
		if _, held := w.leases[tMaster]; held != tc.held {
			t.Errorf("a lease of 1s, 2.5s after its last heartbeat, the worker stalled for %s: held %v, want %v", tc.stall, held, tc.held)
		}
		if _, gone := w.gone[tMaster]; gone == tc.held {
			t.Errorf("stalled %s: the master is gone %v, want %v", tc.stall, gone, !tc.held)
		}
	}
}

// A lease renewed once the stall ended (its heartbeats read at last) is
// not pushed past now: a master that hangs after a worker's stall gets
// one lease, not one lease plus the stall.
func TestStallNeverPushesALeaseIntoTheFuture(t *testing.T) {
	now := time.Now()
	w := newTestWorker()
	w.leases = map[string]*lease{tMaster: {length: time.Second, last: now.Add(-10 * time.Millisecond)}}
	w.stalled(5*time.Second, now)
	if last := w.leases[tMaster].last; last.After(now) {
		t.Fatalf("after a stall of 5s, the lease's last heartbeat is %s in the future", last.Sub(now))
	}
	w.expireLeases(now.Add(1100 * time.Millisecond))
	if _, held := w.leases[tMaster]; held {
		t.Fatal("a lease of 1s, renewed at the end of a stall, still held 1.1s later")
	}
}
