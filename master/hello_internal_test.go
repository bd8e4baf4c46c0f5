package master

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/embedded"
	"github.com/processional/processional/internal/wire"
)

// TestAskHelloAgain: a hello whose reply is lost is asked again, and a
// worker that never answers ends the attach at the context's deadline
// with an error, instead of a wait without end.
func TestAskHelloAgain(t *testing.T) {
	srv, m := embeddedMaster(t)
	nc, err := nats.Connect(srv.URL(), nats.Token(srv.Token()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A worker whose first answer is lost, and one that never answers.
	var asked, mute atomic.Int32
	sub, err := nc.Subscribe(wire.ControlSubject("w-lossy", "hello"), func(msg *nats.Msg) {
		if asked.Add(1) > 1 {
			msg.Respond([]byte("hello again"))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	sub2, err := nc.Subscribe(wire.ControlSubject("w-mute", "hello"), func(*nats.Msg) { mute.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Unsubscribe()
	nc.Flush()

	ctx := context.Background()
	msg, err := m.askHello(ctx, "w-lossy")
	if err != nil {
		t.Fatalf("lossy worker: %v", err)
	}
	if string(msg.Data) != "hello again" || asked.Load() < 2 {
		t.Fatalf("lossy worker: got %q after %d asks, want the second ask's answer", msg.Data, asked.Load())
	}

	ctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer cancel()
	_, err = m.askHello(ctx, "w-mute")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("mute worker: %v, want no answer: deadline exceeded", err)
	}
	if n := mute.Load(); n < 2 {
		t.Fatalf("mute worker asked %d times in 2.5 s, want one ask a second", n)
	}
}

// embeddedMaster starts a NATS server and a master on it, both closed when
// the test ends.
func embeddedMaster(t *testing.T) (*embedded.Server, *Master) {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	m, err := New(context.Background(), WithNATS(srv.URL()), WithToken(srv.Token()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return srv, m
}
