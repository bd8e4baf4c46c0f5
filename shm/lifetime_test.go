//go:build unix

package shm

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestSliceHoldsTheSegment(t *testing.T) {
	watch(t)
	b, err := New(16)
	if err != nil {
		t.Fatal(err)
	}
	name := nameOf(t, b)
	s, err := b.Slice(8, 16)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if b.Bytes() != nil {
		t.Fatal("Bytes after Close")
	}
	wantExists(t, name, true)
	copy(s.Bytes(), "still ok")
	if string(s.Bytes()) != "still ok" {
		t.Fatal("the slice no longer works")
	}
	// The slice can be sliced and reopened.
	s2, err := s.Slice(0, 5)
	if err != nil {
		t.Fatal(err)
	}
	o, err := Open(name, 8, 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(o.Bytes()) != "still ok" {
		t.Fatalf("Open sees %q", o.Bytes())
	}
	s.Close()
	o.Close()
	wantExists(t, name, true)
	if string(s2.Bytes()) != "still" {
		t.Fatal("the last slice no longer works")
	}
	s2.Close()
	wantExists(t, name, false)
	if len(slotsOfMapped(name)) != 0 {
		t.Fatal("the segment is still mapped")
	}
}

func TestClose(t *testing.T) {
	watch(t)
	b, err := New(8)
	if err != nil {
		t.Fatal(err)
	}
	name := nameOf(t, b)
	keep := b.mustSlice(t, 0, 8) // so that a double release would show
	for range 3 {
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if b.Bytes() != nil {
		t.Fatal("Bytes after Close is not nil")
	}
	if _, _, _, ok := b.Ref(); ok {
		t.Fatal("Ref of a closed buffer is ok")
	}
	_, err = b.Slice(0, 1)
	wantErr(t, err, ErrClosed)
	_, err = View[float64](b)
	wantErr(t, err, ErrClosed)
	_, err = b.Transit(os.Getpid())
	wantErr(t, err, ErrClosed)
	// The repeated Closes released one hold only.
	if keep.Bytes() == nil {
		t.Fatal("the slice was closed")
	}
	refs := refsOf(name)
	if refs != 1 {
		t.Fatalf("refs %d after the slice's parent closed thrice, want 1", refs)
	}
	wantExists(t, name, true)
	keep.Close()
	keep.Close()
	wantExists(t, name, false)
	// Closing a buffer of ordinary memory.
	f := FromBytes([]byte{1, 2})
	if err := f.Close(); err != nil || f.Bytes() != nil {
		t.Fatal("Close of FromBytes")
	}
	_, err = f.Slice(0, 1)
	wantErr(t, err, ErrClosed)
}

func TestNilBuffer(t *testing.T) {
	for _, b := range []*Buffer{nil, {}} {
		if b.Bytes() != nil || b.Len() != 0 || b.Shared() || b.String() != "shm.Buffer(nil)" {
			t.Fatalf("nil buffer: %v %d %v %q", b.Bytes(), b.Len(), b.Shared(), b.String())
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if _, _, _, ok := b.Ref(); ok {
			t.Fatal("Ref of nil ok")
		}
		_, err := b.Slice(0, 0)
		wantErr(t, err, ErrClosed, "nil")
		_, err = View[int](b)
		wantErr(t, err, ErrClosed, "nil")
		_, err = b.Transit(os.Getpid())
		wantErr(t, err, ErrClosed, "nil")
	}
}

func TestGarbageCollectedBufferReleases(t *testing.T) {
	watch(t)
	// A cleanup runs some time after the collection that found its
	// Buffer unreachable: collect, and look, until the deadline.
	gone := func(name string) bool {
		for deadline := time.Now().Add(timeout); exists(name); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				return false
			}
			runtime.GC()
		}
		return true
	}
	name := func() string {
		b, err := New(64)
		if err != nil {
			t.Fatal(err)
		}
		b.Bytes()[0] = 1
		return nameOf(t, b)
	}()
	if !gone(name) {
		t.Fatal("an unreachable Buffer's segment is still there")
	}
	// A slice kept holds the segment after its parent is collected.
	var s *Buffer
	name = func() string {
		b, err := New(64)
		if err != nil {
			t.Fatal(err)
		}
		s, _ = b.Slice(8, 16)
		return nameOf(t, b)
	}()
	// The parent's cleanup has run once the slice is the segment's only
	// Buffer in this process.
	refs := func() int {
		mapped.Lock()
		defer mapped.Unlock()
		return s.seg.refs
	}
	for deadline := time.Now().Add(timeout); refs() > 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the parent of a slice, unreachable, was never released: %d Buffers hold the segment", refs())
		}
		runtime.GC()
	}
	wantExists(t, name, true)
	copy(s.Bytes(), "kept")
	runtime.KeepAlive(s)
	s = nil
	if !gone(name) {
		t.Fatal("the segment of a collected slice is still there")
	}
}

func TestConcurrentSliceCloseOpen(t *testing.T) {
	watch(t)
	const workers, rounds = 8, 200
	root, err := New(workers * 8)
	if err != nil {
		t.Fatal(err)
	}
	name := nameOf(t, root)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				s, err := root.Slice(w*8, w*8+8)
				if err != nil {
					errs <- err
					return
				}
				s.Bytes()[0] = byte(r)
				o, err := Open(name, w*8, 8, 0)
				if err != nil {
					errs <- err
					return
				}
				if o.Bytes()[0] != byte(r) {
					errs <- fmt.Errorf("worker %d round %d: Open sees %d", w, r, o.Bytes()[0])
					return
				}
				ss, err := o.Slice(1, 8)
				if err != nil {
					errs <- err
					return
				}
				if _, err := View[uint8](ss); err != nil {
					errs <- err
					return
				}
				// Several goroutines close the same buffer.
				var cw sync.WaitGroup
				for range 3 {
					cw.Add(1)
					go func() { defer cw.Done(); s.Close() }()
				}
				cw.Wait()
				o.Close()
				ss.Close()
				if r%50 == 0 {
					if len(initialOrphans) > 0 { // not to be touched
						sweepOne(name)
					} else if _, err := Sweep(); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	refs := refsOf(name)
	if refs != 1 {
		t.Fatalf("refs %d after all the goroutines, want 1", refs)
	}
	if s := slotsFor(t, name, os.Getpid()); len(s) != 1 {
		t.Fatalf("slots %+v", s)
	}
	root.Close()
	wantExists(t, name, false)
}

// Slice checks that its buffer is open, then takes a hold on the segment:
// a Close in between, the last one of the segment, unmaps it, and Slice
// returns a Buffer over unmapped memory.
func TestSliceRacingLastClose(t *testing.T) {
	watch(t)
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		b, err := New(8)
		if err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		done := make(chan struct{})
		go func() {
			<-start
			b.Close()
			close(done)
		}()
		close(start)
		s, err := b.Slice(0, 8)
		<-done
		if err != nil {
			continue
		}
		mapped.Lock()
		gone := s.seg.gone
		mapped.Unlock()
		if gone {
			t.Fatalf("round %d: Slice succeeded (%v) on a segment released and unmapped by a concurrent Close; writing into it: %v", i, s, touch(s.Bytes()))
		}
		s.Close()
	}
}

func TestReleaseAll(t *testing.T) {
	watch(t)
	a, _ := New(8)
	b, _ := New(8)
	as := a.mustSlice(t, 0, 4)
	o, err := Open(nameOf(t, b), 0, 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	na, nb := nameOf(t, a), nameOf(t, b)
	ReleaseAll()
	wantExists(t, na, false)
	wantExists(t, nb, false)
	if len(slotsOfMapped(na))+len(slotsOfMapped(nb)) != 0 {
		t.Fatal("still mapped after ReleaseAll")
	}
	// Closing afterwards is harmless.
	for _, x := range []*Buffer{a, b, as, o} {
		x.Close()
	}
}
