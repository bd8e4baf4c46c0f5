package embedded_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/processional/processional/embedded"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartConnectShutdown(t *testing.T) {
	s, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := s.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.Subscribe("x", func(m *nats.Msg) { m.Respond(append([]byte("re:"), m.Data...)) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	// A TCP client with the token reaches the in-process responder.
	tc, err := nats.Connect(s.URL(), nats.Token(s.Token()))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	m, err := tc.Request("x", []byte("hi"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "re:hi" {
		t.Fatalf("reply %q", m.Data)
	}
}

func TestTokenRequired(t *testing.T) {
	s, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	for _, tc := range []struct {
		name string
		opts []nats.Option
	}{
		{"no token", nil},
		{"wrong token", []nats.Option{nats.Token("wrong")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(s.URL(), append(tc.opts, nats.MaxReconnects(0))...)
			if err == nil {
				nc.Close()
				t.Fatal("connected without the token")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("err = %v, want an authorization error", err)
			}
		})
	}
}

func TestShutdownIdempotent(t *testing.T) {
	s, err := embedded.Start(embedded.Options{Token: "fixed"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Token() != "fixed" {
		t.Fatalf("token %q", s.Token())
	}
	s.Shutdown()
	s.Shutdown()
}

func TestBadPort(t *testing.T) {
	if _, err := embedded.Start(embedded.Options{Port: 70000}); !errors.Is(err, embedded.ErrStart) {
		t.Fatalf("err = %v, want ErrStart", err)
	}
}
