//go:build unix

package lane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/processional/processional/internal/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pairFunc returns the two ends of a lane that takes frames up to max.
type pairFunc func(t *testing.T, max int) (*Conn, *Conn)

// forEachPair runs f on each kind of lane: a socketpair handed down, and
// a dialled one.
func forEachPair(t *testing.T, f func(*testing.T, pairFunc)) {
	t.Run("socketpair", func(t *testing.T) { f(t, socketPair) })
	t.Run("dialled", func(t *testing.T) { f(t, dialledPair) })
}

// socketPair returns the two ends of a lane over a real socketpair, with
// small socket buffers so that writes fill them.
func socketPair(t *testing.T, max int) (*Conn, *Conn) {
	t.Helper()
	a, f, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	// As a worker does: Inherit takes a bare descriptor and closes it. The
	// *os.File must let go of its own (its finalizer would close the
	// number again, by then another test's descriptor).
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Inherit(fd)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*net.UnixConn{a, b} {
		c.SetWriteBuffer(4096)
		c.SetReadBuffer(4096)
	}
	ca, cb := New(a, max, nil), New(b, max, nil)
	t.Cleanup(func() { ca.Close(); cb.Close() })
	return ca, cb
}

// dialledPair returns the two ends of a dialled lane, the master's and
// the worker's, with small socket buffers so that writes fill them.
func dialledPair(t *testing.T, max int) (*Conn, *Conn) {
	t.Helper()
	d, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Dial(d.Addr(), d.Key())
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	a, err := d.wait()
	if err != nil {
		b.Close()
		d.Close()
		t.Fatal(err)
	}
	for _, c := range []*net.UnixConn{a, b} {
		c.SetWriteBuffer(4096)
		c.SetReadBuffer(4096)
	}
	ca, cb := New(d, max, nil), New(b, max, nil)
	t.Cleanup(func() { ca.Close(); cb.Close() })
	return ca, cb
}

// Frames written by many goroutines at once all arrive whole, each
// writer's in its order, through a socket too small for them.
func TestManyWritersOneReader(t *testing.T) {
	forEachPair(t, func(t *testing.T, pair pairFunc) {
		a, b := pair(t, 1<<20)
		const writers, each = 8, 2000
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					body := binary.BigEndian.AppendUint32([]byte{byte(w)}, uint32(i))
					if i%500 == 0 {
						body = append(body, bytes.Repeat([]byte{7}, bigFrame+10)...) // a big one now and then
					}
					if err := a.Write(Call, body); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		next := make([]uint32, writers)
		for range writers * each {
			f, err := b.Read()
			if err != nil {
				t.Fatal(err)
			}
			w, i := f.Body[0], binary.BigEndian.Uint32(f.Body[1:5])
			if f.Kind != Call || i != next[w] {
				t.Fatalf("writer %d: frame %d (%s), want %d", w, i, f.Kind, next[w])
			}
			next[w]++
		}
		wg.Wait()
	})
}

// A kicked Read consumes nothing: the next Read gets the frame whole.
// The kick ends the Read whether it waits already or has not begun.
func TestKickBetweenFrames(t *testing.T) {
	forEachPair(t, func(t *testing.T, pair pairFunc) {
		a, b := pair(t, 1<<20)
		done := make(chan error, 1)
		go func() { _, err := b.Read(); done <- err }()
		b.Kick()
		if err := <-done; !Kicked(err) {
			t.Fatalf("kicked Read: %v, want a kick", err)
		}
		b.Unkick()
		if err := a.Write(Reply, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		f, err := b.Read()
		if err != nil || f.Kind != Reply || string(f.Body) != "hello" {
			t.Fatalf("after a kick: %v %q %v", f.Kind, f.Body, err)
		}
	})
}

// Bad frames are named; the end of the lane is EOF.
func TestBadFrames(t *testing.T) {
	forEachPair(t, func(t *testing.T, pair pairFunc) {
		for _, tc := range []struct {
			name string
			raw  []byte
			want error
		}{
			{"unknown kind", []byte{0, 0, 0, 1, 'x', 0}, registry.ErrBadPayload},
			{"past the limit", []byte{0, 1, 0, 0, 'c'}, registry.ErrTooBig},
			{"cut short", []byte{0, 0, 0, 9, 'c', 1, 2}, registry.ErrBadPayload},
			{"header cut short", []byte{0, 0}, registry.ErrBadPayload},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a, b := pair(t, 1024)
				a.c.Write(tc.raw)
				a.c.Close()
				_, err := b.Read()
				if !errors.Is(err, tc.want) {
					t.Fatalf("%v, want %v", err, tc.want)
				}
				t.Log(err)
			})
		}
		a, b := pair(t, 1024)
		a.Close()
		if _, err := b.Read(); !Ended(err) || !errors.Is(err, io.EOF) {
			t.Fatalf("closed lane: %v, want EOF", err)
		}
	})
}

// LetGo sends what was written, then EOF; later writes fail with ErrLetGo.
func TestLetGo(t *testing.T) {
	forEachPair(t, func(t *testing.T, pair pairFunc) {
		a, b := pair(t, 1024)
		a.Write(Send, []byte("last"))
		if err := a.LetGo(); err != nil {
			t.Fatal(err)
		}
		if err := a.Write(Send, []byte("late")); !errors.Is(err, ErrLetGo) {
			t.Fatalf("write after LetGo: %v", err)
		}
		if f, err := b.Read(); err != nil || string(f.Body) != "last" {
			t.Fatalf("%q %v", f.Body, err)
		}
		if _, err := b.Read(); !errors.Is(err, io.EOF) {
			t.Fatalf("after LetGo: %v, want EOF", err)
		}
		// The other way still works.
		if err := b.Write(Bye, nil); err != nil {
			t.Fatal(err)
		}
		if f, err := a.Read(); err != nil || f.Kind != Bye {
			t.Fatalf("%v %v", f.Kind, err)
		}
	})
}

// A write to a lane whose peer is gone fails, and the reader sees the
// lane end.
func TestWriteToGonePeer(t *testing.T) {
	forEachPair(t, func(t *testing.T, pair pairFunc) {
		a, b := pair(t, 1024)
		b.Close()
		// The first writes may go into the socket's buffer before the
		// peer's end is seen; one soon fails.
		var err error
		for deadline := time.Now().Add(10 * time.Second); err == nil && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			err = a.Write(Call, []byte("x"))
		}
		if !errors.Is(err, ErrClosed) || !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("write to a gone peer: %v", err)
		}
		if _, err := a.Read(); !Ended(err) {
			t.Fatalf("read after a failed write: %v, want the lane's end", err)
		}
	})
}

// A queue that grows past what is kept between writes (the peer reads
// late) still goes out whole and in order.
func TestLongQueue(t *testing.T) {
	forEachPair(t, func(t *testing.T, pair pairFunc) {
		a, b := pair(t, 1<<20)
		const n = 300_000
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range n {
				if i%20_000 == 0 {
					// Rounds of writes, each arriving behind a long queue:
					// the shape of the load, not a wait.
					time.Sleep(10 * time.Millisecond)
				}
				if err := a.Write(Send, binary.BigEndian.AppendUint32(make([]byte, 0, 64), uint32(i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		// The peer reads late: only once the writer's queue has grown past
		// what is kept between writes.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			a.mu.Lock()
			queued := len(a.out)
			a.mu.Unlock()
			if queued > queueCap {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the queue holds %d bytes after 10 s, want more than %d", queued, queueCap)
			}
		}
		for i := range n {
			f, err := b.Read()
			if err != nil {
				t.Fatal(err)
			}
			if got := binary.BigEndian.Uint32(f.Body); got != uint32(i) {
				t.Fatalf("frame %d, want %d", got, i)
			}
		}
		<-done
	})
}
