package master_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
	"github.com/processional/processional/server"
)

func startServer(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.Start(server.Options{Socket: filepath.Join(t.TempDir(), "s")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConnect(t *testing.T) {
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, addr := range map[string]string{"tcp": srv.URL(), "unix socket": srv.Addr()} {
		t.Run(name, func(t *testing.T) {
			a, err := master.Connect(ctx, addr, master.WithToken(srv.Token()))
			if err != nil {
				t.Fatal(err)
			}
			b, err := master.Connect(ctx, addr, master.WithToken(srv.Token()))
			if err != nil {
				t.Fatal(err)
			}
			if a.PID() != os.Getpid() || a.ID() != "server" {
				t.Fatalf("connected to %s pid %d", a.ID(), a.PID())
			}
			// Each master keeps its own order; a's blocked queue does not
			// hold b back.
			slow := master.Schedule(ctx, a, Sleep, 300*time.Millisecond)
			if n, err := master.Invoke(ctx, b, Sum, []int{1, 2}); n != 3 || err != nil {
				t.Fatalf("b behind a's sleep: %d, %v", n, err)
			}
			if slow.Available() {
				t.Fatal("a's sleep finished before b's call")
			}
			after := master.Schedule(ctx, a, Sum, []int{5})
			// A heartbeat travels on a subject of its own, so it may be
			// handled after calls sent later: wait for both.
			for deadline := time.Now().Add(5 * time.Second); len(srv.Worker().Leases()) != 2; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("leases %v, want one per master", srv.Worker().Leases())
				}
			}
			// a closes: its queued calls finish first; b goes on.
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := slow.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if n, err := after.Wait(ctx); n != 5 || err != nil {
				t.Fatalf("a's call queued before Close: %d, %v", n, err)
			}
			if _, err := master.Invoke(ctx, a, Sum, nil); !errors.Is(err, bus.ErrClosed) {
				t.Fatalf("a after Close: %v", err)
			}
			if n, err := master.Invoke(ctx, b, Sum, []int{4}); n != 4 || err != nil {
				t.Fatalf("b after a closed: %d, %v", n, err)
			}
			if l := srv.Worker().Leases(); len(l) != 1 || !hasKey(l, b.Master().ID()) {
				t.Fatalf("leases %v after a closed, want b's", l)
			}
			b.Close()
		})
	}
}

func TestConnectBadInput(t *testing.T) {
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := l.Addr().String()
	l.Close() // nothing listens there now
	notSocket := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notSocket, nil, 0o600)
	for _, tc := range []struct {
		name string
		addr string
		opts []master.Option
		want []error
	}{
		{"nothing listening", deadAddr, nil, []error{master.ErrConnect}},
		{"wrong token", srv.URL(), []master.Option{master.WithToken("wrong")}, []error{master.ErrConnect, nats.ErrAuthorization}},
		{"no token", srv.Addr(), nil, []error{master.ErrConnect}},
		{"not a socket", "unix://" + notSocket, []master.Option{master.WithToken(srv.Token())}, []error{master.ErrConnect}},
		{"no such server id", srv.URL(), []master.Option{master.WithToken(srv.Token()), master.WithServerID("nobody")}, []error{master.ErrConnect}},
		{"empty address", "", nil, []error{master.ErrConfig}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := master.Connect(ctx, tc.addr, tc.opts...)
			for _, want := range tc.want {
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want %v", err, want)
				}
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
}

func hasKey(m map[string]time.Duration, k string) bool { _, ok := m[k]; return ok }
