package peer_test

import (
	"errors"
	"io"
	"testing"

	"go.uber.org/goleak"

	"github.com/processional/processional/internal/peer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type closer struct{ closed int }

func (c *closer) Close() error { c.closed++; return nil }

func TestClientMadeOnceClosedOnce(t *testing.T) {
	var c peer.Context
	made := 0
	cl := &closer{}
	mk := func() (io.Closer, error) { made++; return cl, nil }
	for range 3 {
		got, err := c.Client(mk)
		if err != nil || got != cl {
			t.Fatalf("Client = %v, %v", got, err)
		}
	}
	if made != 1 {
		t.Fatalf("made %d clients", made)
	}
	c.Close()
	c.Close()
	if cl.closed != 1 {
		t.Fatalf("closed %d times", cl.closed)
	}
	if _, err := c.Client(mk); !errors.Is(err, peer.ErrClosed) {
		t.Fatalf("Client after Close: %v", err)
	}
}

func TestClientError(t *testing.T) {
	var c peer.Context
	boom := errors.New("boom")
	if _, err := c.Client(func() (io.Closer, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
