package serve

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/embedded"
)

// When the client drops messages of the call subscription (a slow
// consumer), the worker bumps its epoch, as after a reconnect: its
// masters then fail the calls in flight. A slow consumer elsewhere is
// only logged. (That nats.go drops past the channel's 65,536 messages is
// nats.go's to test; this is the worker's answer to its report.)
func TestSlowCallsBumpEpoch(t *testing.T) {
	nc := natsConn(t, embedded.Options{})
	w, err := Serve(nc, Config{ID: "w-slow-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	report := nc.Opts.AsyncErrorCB // as nats.go calls it, from the worker's hook
	if report == nil {
		t.Fatal("the worker set no error handler")
	}
	other, err := nc.SubscribeSync("elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Unsubscribe()
	before := w.epoch.Load()
	report(nc, other, nats.ErrSlowConsumer)
	report(nc, w.callSub, errors.New("some other trouble"))
	if got := w.epoch.Load(); got != before {
		t.Fatalf("epoch %#x after reports that lost no call, want %#x", got, before)
	}
	report(nc, w.callSub, nats.ErrSlowConsumer)
	got := w.epoch.Load()
	if got != before+1 {
		t.Fatalf("epoch %#x after the call subscription dropped messages, want %#x", got, before+1)
	}
	if got>>32 != before>>32 {
		t.Fatal("the epoch's process half changed: masters would take it for another worker")
	}
}

// natsConn starts a NATS server of opts and connects to it; both end
// with t.
func natsConn(t *testing.T, opts embedded.Options) *nats.Conn {
	t.Helper()
	srv, err := embedded.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.URL(), nats.Token(srv.Token()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
