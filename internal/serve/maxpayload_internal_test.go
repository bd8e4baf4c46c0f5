package serve

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/embedded"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
)

// bigResult returns n bytes: a result far larger than its call.
var bigResult = bus.Register("serve-test.bigResult", func(_ context.Context, n int) ([]byte, error) {
	return bytes.Repeat([]byte{7}, n), nil
})

// A worker's cached max payload may be an earlier server's, until its
// reconnect handler reads the new one: a result over the new server's,
// refused by the client, is then sent in chunks, as any result over it
// is (the master's side: TestStaleMaxPayload).
func TestStaleMaxPayloadReply(t *testing.T) {
	nc := natsConn(t, embedded.Options{MaxPayload: 64 << 10})
	w, err := Serve(nc, Config{ID: "w-stale-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	w.maxPay.Hold(1 << 20) // as if read from a server of 1 MiB

	// The master's end: take the chunks, acknowledge each window.
	const n = 100 << 10
	inbox := nats.NewInbox()
	got := make(chan *nats.Msg, 64)
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) {
		if m.Reply != "" {
			m.Respond(nil)
		}
		got <- m
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	call, err := wire.AppendCall(nil, &wire.Call{Kind: wire.KindCall, Master: tMaster, ID: 1, Function: bigResult.Name()}, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(wire.CallSubject(w.id), inbox, call); err != nil {
		t.Fatal(err)
	}
	var joined []byte
	var chunks uint32
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-got:
			var c wire.Chunk
			if err := wire.DecodeReplyChunk(m.Data, &c); err != nil {
				_, _, remote, derr := wire.DecodeReply(m.Data)
				t.Fatalf("a reply of %d bytes, not a chunk (%v): remote %v, %v", len(m.Data), err, remote, derr)
			}
			if c.ID != 1 || c.Index != chunks {
				t.Fatalf("chunk %d of %d of call %d, want chunk %d of call 1", c.Index, c.Count, c.ID, chunks)
			}
			chunks++
			joined = append(joined, c.Data...)
			if c.Index < c.Count-1 {
				continue
			}
			id, result, remote, err := wire.DecodeReply(joined)
			if err != nil || remote != nil || id != 1 {
				t.Fatalf("the joined reply: call %d, remote %v, %v", id, remote, err)
			}
			var b []byte
			if err := codec.Unmarshal(result, &b); err != nil || len(b) != n {
				t.Fatalf("the result: %d bytes, %v; want %d", len(b), err, n)
			}
			if m := w.maxPayload(); m != 64<<10 {
				t.Fatalf("max payload read again: %d, want %d", m, 64<<10)
			}
			return
		case <-timeout:
			t.Fatalf("no whole reply within 20s: %d bytes of chunks", len(joined))
		}
	}
}
