//go:build unix

package shm

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestTransientRoundTrip(t *testing.T) {
	watch(t)
	data := bytes.Repeat([]byte("transient "), 100_000)
	tr, name, nonce, err := SendTransient(data, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tr.Close() // sent: the transit holds it
	wantExists(t, name, true)
	// Only the header is mapped, by no one now; the data is in the file.
	got, err := ReceiveTransient(name, len(data), nonce, make([]byte, 0, 16))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, %v", len(got), err)
	}
	wantExists(t, name, false)
	if _, err := ReceiveTransient(name, len(data), nonce, nil); !errors.Is(err, ErrNoSegment) {
		t.Fatalf("received twice: %v, want ErrNoSegment", err)
	}
}

func TestTransientReceiveBadInput(t *testing.T) {
	watch(t)
	tr, name, nonce, err := SendTransient([]byte("0123456789"), os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, c := range []struct {
		name string
		n    int
		want error
		says string
	}{
		{"../etc/passwd", 1, ErrNoSegment, "not a processional segment name"},
		{Prefix + strings.Repeat("0", 24), 1, ErrNoSegment, "unlinked"},
		{name, 11, ErrRange, "11 bytes of segment"},
		{name, -1, ErrRange, "-1 bytes"},
	} {
		if _, err := ReceiveTransient(c.name, c.n, nonce, nil); !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s, %d bytes: %v, want %v saying %q", c.name, c.n, err, c.want, c.says)
		}
	}
	// The reads refused took no hold, and left the transit alone: once
	// the sender let go, it alone holds the segment.
	tr.Close()
	got, err := ReceiveTransient(name, 10, nonce, nil)
	if err != nil || string(got) != "0123456789" {
		t.Fatalf("%q, %v", got, err)
	}
	wantExists(t, name, false)
	if _, _, _, err := SendTransient(nil, os.Getpid()); !errors.Is(err, ErrRange) {
		t.Fatalf("an empty transient: %v", err)
	}
}
