package master

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/embedded"
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

// A max payload read from an earlier server, bigger than the server's
// now: a call over the new one, refused by the client, is read again and
// goes in chunks, and so does the worker's reply.
func TestStaleMaxPayload(t *testing.T) {
	m := NewOnSmallServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := m.Spawn(ctx, WithoutLane())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	m.maxPay.Hold(1 << 20) // as if read from a server of 1 MiB
	big := bytes.Repeat([]byte{7}, 100<<10)
	got, err := Invoke(ctx, h, builtin.Echo, big)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("a call over the new max payload: %d bytes back, %v", len(got), err)
	}
	if n := m.maxPayload(); n != 64<<10 {
		t.Fatalf("max payload read again: %d, want %d", n, 64<<10)
	}
}

// NewOnSmallServer starts an embedded server whose max payload is 64 KiB,
// and a master connected to it; both close with t. For the tests of the
// master's package and of master_test.
func NewOnSmallServer(t *testing.T) *Master {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{MaxPayload: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := New(ctx, WithNATS(srv.URL()), WithToken(srv.Token()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
