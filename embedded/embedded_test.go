package embedded_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

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
	// The server has the subscription once a flush comes back: Subscribe
	// only queues it, and a request from another connection may otherwise
	// arrive first and find no responder (it did, once in CI).
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
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

// TestBcryptToken: a config file's bcrypt-hashed token takes the plain
// token, which in-process and TCP clients present; without it, or with one
// that does not match, the server refuses to start, saying why.
func TestBcryptToken(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("authorization { token: %q }\n", hash)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ token, want string }{
		{"", "bcrypt-hashed: give the plain token"},
		{"wrong", "does not match"},
	} {
		s, err := embedded.Start(embedded.Options{ConfigFile: conf, Token: tc.token})
		if err == nil {
			s.Shutdown()
			t.Fatalf("token %q: started", tc.token)
		}
		if !errors.Is(err, embedded.ErrStart) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("token %q: %v, want %q", tc.token, err, tc.want)
		}
	}
	s, err := embedded.Start(embedded.Options{ConfigFile: conf, Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if s.Token() != "s3cret" {
		t.Errorf("Token() = %q, want the plain token", s.Token())
	}
	in, err := s.Connect("in-process")
	if err != nil {
		t.Fatalf("in-process client: %v", err)
	}
	in.Close()
	tcp, err := nats.Connect(s.URL(), nats.Token("s3cret"))
	if err != nil {
		t.Fatalf("TCP client with the plain token: %v", err)
	}
	tcp.Close()
	if nc, err := nats.Connect(s.URL(), nats.Token(string(hash)), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("the hash itself was taken as the token")
	}
}
