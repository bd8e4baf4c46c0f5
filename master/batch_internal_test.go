package master

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// A reply batch that holds a reply that does not decode, or that was
// cut short, fails those calls alone, each with an error naming it; the
// others get their results.
func TestReplyBatchBadEntries(t *testing.T) {
	s := newSlave(&Master{id: "m-batch"}, "w-batch")
	tasks := make([]*Task[string], 4)
	ids := make([]uint64, len(tasks))
	for i := range tasks {
		tasks[i] = newTask[string]("f")
		s.mu.Lock()
		ids[i] = s.pending.add(tasks[i])
		s.mu.Unlock()
	}
	ok, err := wire.AppendReply(nil, ids[0], "zero")
	if err != nil {
		t.Fatal(err)
	}
	last, _ := wire.AppendReply(nil, ids[3], "three")
	var b wire.Batch
	b.Add(ids[0], ok)
	b.Add(ids[1], []byte("garbage"))
	b.Add(ids[2], last[:3]) // cut within its envelope
	b.Add(ids[3], last)
	data := b.AppendReplies(nil)
	// Cut short in the last envelope: the fourth reply is lost too.
	s.replyBatch(data[:len(data)-1])

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := tasks[0].Wait(ctx); got != "zero" || err != nil {
		t.Fatalf("the good reply: %q, %v", got, err)
	}
	for i, want := range map[int]string{1: "reply 2 of 4 in a batch", 2: "reply 3 of 4 in a batch", 3: "reply 4 of 4 in a batch: processional: undecodable payload: reply batch of 4 cut short in envelope 4"} {
		_, err := tasks[i].Wait(ctx)
		if !errors.Is(err, bus.ErrBadPayload) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "w-batch") {
			t.Errorf("reply %d: %v, want ErrBadPayload saying %q", i+1, err, want)
		}
	}
}
