package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// batchReplies sends data, a call batch, with an inbox of its own as the
// reply subject, and returns the replies that come there (alone or in
// reply batches) by id, once want of them came.
func (h *harness) batchReplies(t *testing.T, data []byte, want int, before func(got map[uint64]reply)) map[uint64]reply {
	t.Helper()
	inbox := nats.NewInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := h.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := h.nc.PublishRequest(h.subject(), inbox, data); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]reply{}
	take := func(env []byte) {
		id, raw, re, err := wire.DecodeReply(env)
		if err != nil {
			t.Fatalf("a reply that does not decode: %v", err)
		}
		if _, dup := got[id]; dup {
			t.Fatalf("call %d answered twice", id)
		}
		got[id] = reply{id: id, raw: raw, re: re}
	}
	for len(got) < want {
		select {
		case msg := <-ch:
			if !wire.IsReplyBatch(msg.Data) {
				take(msg.Data)
				break
			}
			var b wire.Received
			if err := wire.DecodeReplyBatch(msg.Data, &b); err != nil {
				t.Fatalf("a reply batch that does not decode: %v", err)
			}
			for _, env := range b.Entries {
				take(env)
			}
		case <-time.After(timeout):
			t.Fatalf("%d replies of %d", len(got), want)
		}
		if before != nil {
			before(got)
		}
	}
	return got
}

// A call batch's calls run in order and are answered each; one whose
// envelope does not decode, or is another call's, or that the batch
// lost (cut short), is failed alone with an error that names it.
func TestCallBatch(t *testing.T) {
	h := start(t)
	var b wire.Batch
	for i := uint64(1); i <= 6; i++ {
		env := encodeCall(t, wire.Call{Kind: wire.KindCall, Master: master, ID: i, Function: "worker_test.echo", ArgType: "string"}, strings.Repeat("x", int(i)))
		switch i {
		case 2:
			env = env[:len(env)-3] // cut within its argument: no argument
		case 3:
			env = encodeCall(t, wire.Call{Kind: wire.KindCall, Master: master, ID: 33, Function: "worker_test.echo", ArgType: "string"}, "x")
		}
		b.Add(i, env)
	}
	data := b.AppendCalls(nil, master)
	data = data[:len(data)-1] // the sixth is lost
	got := h.batchReplies(t, data, 6, nil)
	for id, want := range map[uint64]string{1: "x", 4: "xxxx", 5: "xxxxx"} {
		if r := got[id]; r.re != nil || decode[string](t, r.raw, r.re) != want {
			t.Errorf("call %d: %v", id, r.re)
		}
	}
	for id, want := range map[uint64]string{
		2: "call 2 of master " + master + ", 2 of 6 in a batch",
		3: "call 3 of master " + master + ", 3 of 6 in a batch, holds the envelope of call 33",
		6: "call 6 of master " + master + ", 6 of 6 in a batch: processional: undecodable payload: call batch of 6 cut short in envelope 6",
	} {
		if r := got[id]; !is(r.re, bus.ErrBadPayload) || !strings.Contains(r.re.Message, want) {
			t.Errorf("call %d: %v, want ErrBadPayload saying %q", id, r.re, want)
		}
	}

	// A batch whose header does not decode names no call: its error goes
	// to id 0, as a call's whose envelope does not decode.
	raw, re := h.request(t, append(append([]byte(nil), data[:4]...), 0xc1))
	if raw != nil || !is(re, bus.ErrBadPayload) {
		t.Fatalf("a garbled batch: %v", re)
	}
	// The worker goes on.
	if got := requestAs[string](t, h, encodeCall(t, wire.Call{Kind: wire.KindCall, Master: master, ID: 9, Function: "worker_test.echo", ArgType: "string"}, "after")); got != "after" {
		t.Fatalf("after bad batches: %q", got)
	}
}

// The replies of calls that ran while more waited go together, but never
// wait for a slow call behind them: a blocked call does not hold back
// the replies of those before it.
func TestBatchRepliesDoNotWait(t *testing.T) {
	h := start(t)
	key, g := newGate(t)
	var b wire.Batch
	for i := uint64(1); i <= 50; i++ {
		b.Add(i, encodeCall(t, wire.Call{Kind: wire.KindCall, Master: master, ID: i, Function: "worker_test.echo", ArgType: "string"}, "x"))
	}
	b.Add(51, encodeCall(t, wire.Call{Kind: wire.KindCall, Master: master, ID: 51, Function: "worker_test.block", ArgType: "string"}, key))
	got := h.batchReplies(t, b.AppendCalls(nil, master), 51, func(got map[uint64]reply) {
		if len(got) == 50 {
			if _, ok := got[51]; ok {
				t.Fatal("the blocked call answered before its gate opened")
			}
			g.open() // the 50 came while it blocked
		}
	})
	if r := got[51]; decode[string](t, r.raw, r.re) != "released" {
		t.Fatalf("the blocked call: %v", r.re)
	}
	if err := <-g.ended; err != nil {
		t.Fatalf("the blocked call's context: %v", err)
	}
}
