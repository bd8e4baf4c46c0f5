//go:build unix

package lane

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A dialled lane takes the first connection that presents its key, and
// only that one: one with a wrong key, and one that hangs up before
// presenting any, are turned away, and the worker's then accepted. Its
// directory is gone once it is.
func TestDialledTakesOnlyItsKey(t *testing.T) {
	d, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	dir := filepath.Dir(d.Addr())
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the lane's directory %s: %v, %v; want one only its owner enters", dir, fi.Mode(), err)
	}
	wrong := strings.Repeat("00", keyLen)
	if wrong == d.Key() {
		t.Fatal("a key of zeroes")
	}
	rogue, err := Dial(d.Addr(), wrong)
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	mute, err := net.Dial("unix", d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	mute.Close()
	// The rogue is closed by the master: it reads EOF.
	rogue.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := rogue.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Fatalf("a connection with the wrong key: read %d, %v; want it closed", n, err)
	}

	w, err := Dial(d.Addr(), d.Key())
	if err != nil {
		t.Fatal(err)
	}
	a, b := New(d, 1024, nil), New(w, 1024, nil)
	defer b.Close()
	if err := b.Write(Reply, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	f, err := a.Read()
	if err != nil || f.Kind != Reply || string(f.Body) != "hello" {
		t.Fatalf("read %v %q, %v; want the worker's reply", f.Kind, f.Body, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the lane's directory after the worker dialled: %v; want it gone", err)
	}
	if _, err := net.Dial("unix", d.Addr()); err == nil {
		t.Error("the lane still listens once its worker dialled")
	}
}

// Before the worker dials, a Kick ends the master's Read with a deadline
// and consumes nothing; writes wait for the worker; the frames then go
// both ways. A lane closed before anyone dialled fails its Read with
// net.ErrClosed, and leaves no directory.
func TestDialledBeforeTheWorker(t *testing.T) {
	d, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	a := New(d, 1024, nil)
	a.Kick()
	if _, err := a.Read(); !Kicked(err) {
		t.Fatalf("a kicked Read before the worker dialled: %v; want a deadline", err)
	}
	a.Unkick()
	wrote := make(chan error, 1)
	go func() { wrote <- a.Write(Call, []byte("call")) }()
	read := make(chan Frame, 1)
	go func() {
		f, err := a.Read()
		if err != nil {
			t.Error(err)
		}
		read <- f
	}()
	w, err := Dial(d.Addr(), d.Key())
	if err != nil {
		t.Fatal(err)
	}
	b := New(w, 1024, nil)
	if f, err := b.Read(); err != nil || f.Kind != Call || string(f.Body) != "call" {
		t.Fatalf("the worker read %v %q, %v; want the call written before it dialled", f.Kind, f.Body, err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	b.Write(Reply, []byte("reply"))
	if f := <-read; f.Kind != Reply || string(f.Body) != "reply" {
		t.Fatalf("the master read %v %q; want the reply", f.Kind, f.Body)
	}
	a.Close()
	if _, err := b.Read(); !Ended(err) {
		t.Fatalf("the worker's Read once the master closed: %v; want the lane's end", err)
	}
	b.Close()

	d, err = Listen()
	if err != nil {
		t.Fatal(err)
	}
	a = New(d, 1024, nil)
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }() // before the Read or while it waits: either must end it
	if _, err := a.Read(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read on a lane closed before the worker dialled: %v; want net.ErrClosed", err)
	}
	<-closed
	if err := a.Write(Call, nil); err == nil {
		t.Fatal("a write on a closed lane succeeded")
	}
	if _, err := os.Stat(filepath.Dir(d.Addr())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the directory of a lane closed before anyone dialled: %v; want it gone", err)
	}
	if _, err := Dial(d.Addr(), d.Key()); err == nil {
		t.Error("dialled a closed lane")
	}
}

// A key that is not one is refused, naming what it should be.
func TestDialBadKey(t *testing.T) {
	if _, err := Dial("/nonexistent", "xyz"); err == nil || !strings.Contains(err.Error(), "hex bytes") {
		t.Fatalf("Dial with key xyz: %v", err)
	}
}

// A connection that dials but never gives a key holds the accept no
// longer than the lane lives: Close ends its wait at once, not after
// keyWait.
func TestDialledCloseEndsTheKeyWait(t *testing.T) {
	defer func(w time.Duration) { keyWait = w }(keyWait)
	keyWait = time.Hour
	d, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	mute, err := net.Dial("unix", d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
		d.mu.Lock()
		vetting := d.vetted != nil
		d.mu.Unlock()
		if vetting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lane never took the connection in")
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close still waits for the key of a connection that gives none")
	}
	if _, err := d.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a Read after Close: %v, want net.ErrClosed", err)
	}
	mute.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := mute.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Fatalf("the mute connection after Close: read %d, %v; want it closed", n, err)
	}
}
