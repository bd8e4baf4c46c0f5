package master

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
)

// halfReply hands s the first of three chunks of the reply to call id.
func halfReply(s *slave, id uint64) {
	data := make([]byte, 100)
	s.replyChunk(&nats.Msg{Data: bus.AppendReplyChunk(nil, &bus.Chunk{ID: id, Count: 3, Total: 300, Data: data})})
}

// joiningLen is how many replies s is joining.
func joiningLen(s *slave) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.joining)
}

// A reply cut off halfway (by a cancel, a reconnect, or the worker's end)
// does not keep its joined part.
func TestHalfJoinedReplyDropped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pending := func(s *slave) uint64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.pending.add(newTask[int]("x"))
	}
	for name, cut := range map[string]func(s *slave, id uint64){
		"cancelled":      func(s *slave, id uint64) { s.cancelCall(id) },
		"reconnect":      func(s *slave, _ uint64) { s.failInFlight(bus.ErrWorkerLost) },
		"worker's epoch": func(s *slave, _ uint64) { s.sawEpoch(1); s.sawEpoch(2) },
		"worker gone":    func(s *slave, _ uint64) { s.end() },
	} {
		s := newSlave(m, "w-half-"+name)
		id := pending(s)
		halfReply(s, id)
		if n := joiningLen(s); n != 1 {
			t.Fatalf("%s: joining %d replies after a first chunk, want 1", name, n)
		}
		cut(s, id)
		if n := joiningLen(s); n != 0 {
			t.Errorf("%s: joining %d replies, want none", name, n)
		}
	}
	// The first chunk of a reply nobody waits for starts nothing.
	s := newSlave(m, "w-half-stray")
	halfReply(s, 42)
	if n := joiningLen(s); n != 0 {
		t.Errorf("a stray reply: joining %d replies, want none", n)
	}
}
