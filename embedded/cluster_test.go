package embedded_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/embedded"
)

// Two servers joined by a route carry a request from a client of one to a
// responder on the other.
func TestCluster(t *testing.T) {
	a, err := embedded.Start(embedded.Options{Token: "tok", Cluster: embedded.Cluster{Name: "c", Port: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	b, err := embedded.Start(embedded.Options{Token: "tok", Cluster: embedded.Cluster{Name: "c", Port: -1, Routes: []string{a.ClusterURL()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	if b.ClusterURL() == "" || a.NATS().Name() == b.NATS().Name() {
		t.Fatalf("cluster URL %q, names %q %q", b.ClusterURL(), a.NATS().Name(), b.NATS().Name())
	}
	ca, err := a.Connect("responder")
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	if _, err := ca.Subscribe("ping", func(m *nats.Msg) { m.Respond([]byte("pong")) }); err != nil {
		t.Fatal(err)
	}
	ca.Flush()
	cb, err := b.Connect("requester")
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msg, err := cb.Request("ping", nil, time.Second)
		if err == nil && string(msg.Data) == "pong" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer through the route: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the route and its interest are still coming up
	}
}

func TestClusterBadRoute(t *testing.T) {
	_, err := embedded.Start(embedded.Options{Cluster: embedded.Cluster{Port: -1, Routes: []string{"nats://[::1"}}})
	if err == nil {
		t.Fatal("a malformed route was taken")
	}
}
