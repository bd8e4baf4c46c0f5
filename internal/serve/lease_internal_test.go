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
			w.stalled(tc.stall)
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
