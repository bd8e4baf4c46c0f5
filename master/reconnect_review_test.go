package master_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// Bytes returns n bytes: a result larger than the server's max payload
// travels in chunks.
var Bytes = bus.Register("test.review.bytes", func(ctx context.Context, n int) ([]byte, error) {
	return make([]byte, n), nil
})

// A master that stops acknowledging the chunks of a result is a lost
// peer: the worker says ErrWorkerLost, not ErrTooBig.
func TestChunkedResultUnacknowledged(t *testing.T) {
	srv := startServer(t)
	nc, err := nats.Connect(srv.URL(), nats.Token(srv.Token()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A master of our own making: it takes the chunks and answers none.
	inbox := nats.NewInbox()
	msgs := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	call, err := wire.AppendCall(nil, &wire.Call{Kind: wire.KindCall, Master: "m-review-silent", ID: 1, Function: Bytes.Name(), ArgType: "int"}, 2*int(nc.MaxPayload())+1)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(wire.CallSubject("server"), inbox, call); err != nil {
		t.Fatal(err)
	}
	chunks := 0
	deadline := time.After(2 * time.Minute) // the worker waits 10 s for an acknowledgement
	for {
		select {
		case <-deadline:
			t.Fatalf("no error reply after %d chunks", chunks)
		case msg := <-msgs:
			if wire.IsReplyChunk(msg.Data) {
				chunks++ // unanswered
				continue
			}
			id, _, remote, err := wire.DecodeReply(msg.Data)
			if err != nil || remote == nil || id != 1 {
				t.Fatalf("reply %d: %v, %v; want an error reply to call 1", id, remote, err)
			}
			if !errors.Is(remote, bus.ErrWorkerLost) || errors.Is(remote, bus.ErrTooBig) {
				t.Fatalf("result's chunks unacknowledged: %v; want ErrWorkerLost", remote)
			}
			if chunks == 0 {
				t.Fatalf("error reply %v before any chunk", remote)
			}
			t.Logf("after %d chunks: %v", chunks, remote)
			return
		}
	}
}
