package embedded_test

import (
	"os"
	"path/filepath"
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

// A server of someone else's, with a token of its own, cannot join a
// cluster through its route port: it would carry its clients' calls to
// the cluster's workers.
func TestClusterRoutesNeedTheToken(t *testing.T) {
	a, err := embedded.Start(embedded.Options{Token: "tok", Cluster: embedded.Cluster{Name: "c", Port: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	intruder, err := embedded.Start(embedded.Options{Token: "mine", Cluster: embedded.Cluster{Name: "c", Port: -1, Routes: []string{a.ClusterURL()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Shutdown()
	friend, err := embedded.Start(embedded.Options{Token: "tok", Cluster: embedded.Cluster{Name: "c", Port: -1, Routes: []string{a.ClusterURL()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer friend.Shutdown()
	// The friend's route comes up; by then the intruder's, tried at the
	// same time, has been refused.
	deadline := time.Now().Add(10 * time.Second)
	for friend.NATS().NumRoutes() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a member with the cluster's token did not join")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := intruder.NATS().NumRoutes(); n != 0 {
		t.Fatalf("a server with another token holds %d routes into the cluster", n)
	}
	if _, err := embedded.Start(embedded.Options{ConfigFile: writeConfig(t, "authorization { users = [ {user: u, password: p} ] }\ncluster { name: c, listen: 127.0.0.1:-1 }\n")}); err == nil {
		t.Fatal("a cluster member with users and no route credentials started")
	}
	if _, err := embedded.Start(embedded.Options{Token: "tok", ConfigFile: writeConfig(t, "authorization { users = [ {user: u, password: p} ] }\n")}); err == nil {
		t.Fatal("a token and the config file's users were both taken")
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
