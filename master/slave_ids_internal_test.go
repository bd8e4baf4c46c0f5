package master

import (
	"context"
	"testing"
	"time"
)

// Found by the chaos soak (seed 11): a pool member lost to the master and
// attached again got a new slave, which numbered its calls from 1 again
// on the same reply subject; a late reply to a call of the slave before
// was taken for the new call of the same id, and a task got another
// task's result. Every slave of a master now numbers its calls apart.
func TestSlavesOfOneWorkerNeverShareCallIDs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	seen := map[uint64]bool{}
	for range 3 {
		s := newSlave(m, "w-again") // attached again: the same worker id
		for range 100 {
			id := s.pending.add(newTask[int]("x"))
			if seen[id] || id == closeID {
				t.Fatalf("call id %d given twice to slaves of worker w-again", id)
			}
			seen[id] = true
		}
	}
}
