package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
	"github.com/processional/processional/server"
)

// lease_teardown kills a master only once it has seen a heartbeat of
// that master on the wire: a connected master's heartbeats are seen, and
// none of a master that is not there.
func TestAwaitHeartbeat(t *testing.T) {
	srv, err := server.Start(server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	nc, err := nats.Connect(srv.URL(), nats.Token(srv.Token()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subject := wire.HeartbeatSubject(wire.DefaultServerID)
	beats := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(subject, beats)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := master.Connect(ctx, srv.URL(), master.WithToken(srv.Token()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := awaitHeartbeat(ctx, beats, subject, s.Master().ID(), time.Now().Add(10*master.DefaultLease)); err != nil {
		t.Fatal(err)
	}
	// Several heartbeat intervals of the connected master go by, none of
	// them from "m-nobody".
	err = awaitHeartbeat(ctx, beats, subject, "m-nobody", time.Now().Add(master.DefaultLease))
	if err == nil || !strings.Contains(err.Error(), "m-nobody") {
		t.Fatalf("no heartbeat of that master: err = %v, want it named", err)
	}
}
