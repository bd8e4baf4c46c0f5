package server_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/server"
)

func TestServerSocketOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	s, err := server.Start(server.Options{Listen: "-", Socket: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.Addr(), "unix://") {
		t.Fatalf("Addr = %q, want the socket", s.Addr())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v, %v: want mode 0600", fi, err)
	}
	nc, err := nats.Connect("nats://unix-socket:4222", nats.Token(s.Token()), nats.SetCustomDialer(unixDialer(path)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg, err := nc.Request(wire.ControlSubject(s.ID(), "hello"), nil, timeout)
	if err != nil {
		t.Fatal(err)
	}
	var h wire.Hello
	if err := codec.Unmarshal(msg.Data, &h); err != nil || h.Worker != server.DefaultID || h.Check() != nil {
		t.Fatalf("hello %+v, %v", h, err)
	}
	// A second server does not take a live server's socket.
	if _, err := server.Start(server.Options{Socket: path}); !errors.Is(err, server.ErrConfig) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second server on %s: %v, want ErrConfig saying it is in use", path, err)
	}
	// A stop request stops it.
	if _, err := nc.Request(wire.ControlSubject(s.ID(), "stop"), nil, timeout); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Stopping():
	case <-time.After(timeout):
		t.Fatal("stop did not stop the server")
	}
	nc.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the socket outlived the server: %v", err)
	}
}

func TestServerBadOptions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	for _, o := range []server.Options{
		{Listen: "-"},
		{Listen: "nonsense"},
		{Listen: "127.0.0.1:99999"},
		{Socket: file},
		{ID: "a.b"},
	} {
		if s, err := server.Start(o); !errors.Is(err, server.ErrConfig) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Start(%+v): %v, want ErrConfig", o, err)
		}
	}
}

// unixDialer dials a Unix socket whatever address nats.go asks for.
type unixDialer string

func (d unixDialer) Dial(_, _ string) (net.Conn, error) { return net.Dial("unix", string(d)) }
