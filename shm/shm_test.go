//go:build unix

package shm

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"unsafe"
)

func TestNewRefusesNonPositiveSizes(t *testing.T) {
	watch(t)
	for _, n := range []int{0, -1, math.MinInt} {
		b, err := New(n)
		if b != nil {
			t.Errorf("New(%d) returned a buffer", n)
		}
		wantErr(t, err, ErrRange, "positive size", fmt.Sprint(n))
	}
}

func TestNewHugeFailsCleanly(t *testing.T) {
	watch(t)
	// headerSize+n overflows: refused by the file system, nothing left.
	b, err := New(math.MaxInt)
	if err == nil {
		b.Close()
		t.Fatal("New(MaxInt) succeeded")
	}
	// Far more than /dev/shm holds (a tmpfs with a size limit refuses it at
	// once, without allocating anything).
	b, err = New(1 << 50)
	if err == nil {
		b.Close()
		t.Fatal("New(1<<50) succeeded")
	}
	if !errors.Is(err, ErrFull) {
		t.Logf("New(1<<50): %v (not ErrFull: /dev/shm has no size limit?)", err)
	}
}

func TestNewBuffer(t *testing.T) {
	watch(t)
	b := mustNew(t, 100)
	if b.Len() != 100 || len(b.Bytes()) != 100 || cap(b.Bytes()) != 100 {
		t.Fatalf("Len %d, len(Bytes) %d, cap %d; want 100", b.Len(), len(b.Bytes()), cap(b.Bytes()))
	}
	if !bytes.Equal(b.Bytes(), make([]byte, 100)) {
		t.Fatal("a new buffer is not zeroed")
	}
	if !b.Shared() {
		t.Fatal("a new buffer is not shared")
	}
	name, off, n, ok := b.Ref()
	if !ok || off != 0 || n != 100 || !validName(name) {
		t.Fatalf("Ref = %q, %d, %d, %v", name, off, n, ok)
	}
	wantExists(t, name, true)
	fi, err := os.Stat(Dir + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != headerSize+100 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("segment file: size %d, mode %v", fi.Size(), fi.Mode())
	}
	if s := b.String(); s != fmt.Sprintf("shm.Buffer(100 bytes at 0 of %s)", name) {
		t.Fatalf("String = %q", s)
	}
	// The header records this process as the only holder.
	slots := headerSlots(t, name)
	if len(slots) != 1 || int(slots[0].pid) != os.Getpid() || slots[0].start != self.start || slots[0].nonce != 0 {
		t.Fatalf("header slots %+v, want this process only", slots)
	}
	if self.start == 0 {
		t.Fatal("this process's start time is 0")
	}
	copy(b.Bytes(), "hello")
	if !bytes.HasPrefix(b.Bytes(), []byte("hello")) {
		t.Fatal("write not seen")
	}
	// Two segments are distinct.
	c := mustNew(t, 100)
	if nameOf(t, c) == name {
		t.Fatal("two New share a name")
	}
	if c.Bytes()[0] != 0 {
		t.Fatal("a write into one segment is seen in another")
	}
	b.Close()
	wantExists(t, name, false)
}

type celsius float64
type level uint8

func TestMakeAndView(t *testing.T) {
	watch(t)
	t.Run("float64", func(t *testing.T) {
		b, v, err := Make[float64](10)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if b.Len() != 80 || len(v) != 10 {
			t.Fatalf("Len %d, len(v) %d", b.Len(), len(v))
		}
		for i := range v {
			if v[i] != 0 {
				t.Fatal("not zeroed")
			}
			v[i] = float64(i) + 0.5
		}
		w, err := View[float64](b)
		if err != nil {
			t.Fatal(err)
		}
		if &w[0] != &v[0] || w[9] != 9.5 {
			t.Fatalf("View is not the same memory: %v", w)
		}
		if unsafe.Pointer(&v[0]) != unsafe.Pointer(&b.Bytes()[0]) {
			t.Fatal("Make's view is not the buffer's memory")
		}
	})
	t.Run("int32", func(t *testing.T) {
		b, v, err := Make[int32](3)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		v[0], v[1], v[2] = -1, 2, math.MaxInt32
		if b.Len() != 12 || !bytes.Equal(b.Bytes()[:4], []byte{0xff, 0xff, 0xff, 0xff}) || b.Bytes()[4] != 2 {
			t.Fatalf("bytes % x", b.Bytes())
		}
	})
	t.Run("uint8", func(t *testing.T) {
		b, v, err := Make[uint8](7)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		v[6] = 42
		if b.Len() != 7 || b.Bytes()[6] != 42 {
			t.Fatal("uint8 view is not the bytes")
		}
		// Any slice of bytes views as uint8, even an odd one.
		s, err := b.Slice(1, 6)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		u, err := View[uint8](s)
		if err != nil || len(u) != 5 || &u[0] != &v[1] {
			t.Fatalf("View[uint8] of [1:6]: len %d, %v", len(u), err)
		}
	})
	t.Run("named", func(t *testing.T) {
		b, v, err := Make[celsius](2)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		v[1] = 36.6
		f, err := View[float64](b)
		if err != nil || f[1] != 36.6 {
			t.Fatalf("View[float64] of a []celsius: %v, %v", f, err)
		}
		b2, l, err := Make[level](4)
		if err != nil {
			t.Fatal(err)
		}
		defer b2.Close()
		l[3] = level(200)
		if b2.Bytes()[3] != 200 {
			t.Fatal("named uint8 view")
		}
	})
	t.Run("refused", func(t *testing.T) {
		for _, n := range []int{0, -3} {
			b, v, err := Make[float64](n)
			if b != nil || v != nil {
				t.Errorf("Make(%d) returned a buffer", n)
			}
			wantErr(t, err, ErrRange)
		}
	})
	t.Run("misaligned", func(t *testing.T) {
		b := mustNew(t, 64)
		s, err := b.Slice(1, 9)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		v, err := View[float64](s)
		if v != nil {
			t.Fatal("view of a misaligned slice")
		}
		wantErr(t, err, ErrRange, "aligned", "float64", "offset 1")
		// Aligned for int8 and int16 at 2, not int32.
		s2, _ := b.Slice(2, 10)
		defer s2.Close()
		if _, err := View[int16](s2); err != nil {
			t.Fatal(err)
		}
		_, err = View[int32](s2)
		wantErr(t, err, ErrRange, "aligned")
		// Aligned at 8.
		s8, _ := b.Slice(8, 24)
		defer s8.Close()
		f, err := View[float64](s8)
		if err != nil || len(f) != 2 {
			t.Fatalf("aligned view: %v, %v", f, err)
		}
	})
	t.Run("not a multiple", func(t *testing.T) {
		b := mustNew(t, 64)
		s, _ := b.Slice(0, 7)
		defer s.Close()
		_, err := View[float64](s)
		wantErr(t, err, ErrRange, "whole number", "7 bytes", "float64")
		_, err = View[int32](b.mustSlice(t, 0, 6))
		wantErr(t, err, ErrRange, "whole number")
		_, err = View[uint16](FromBytes(make([]byte, 3)))
		wantErr(t, err, ErrRange, "whole number")
	})
	t.Run("empty", func(t *testing.T) {
		b := mustNew(t, 16)
		e := b.mustSlice(t, 3, 3)
		v, err := View[float64](e)
		if err != nil || v == nil || len(v) != 0 {
			t.Fatalf("View of an empty buffer: %v, %v", v, err)
		}
	})
	t.Run("ordinary memory", func(t *testing.T) {
		raw := make([]float64, 4)
		bb := unsafe.Slice((*byte)(unsafe.Pointer(&raw[0])), 32)
		v, err := View[float64](FromBytes(bb))
		if err != nil || &v[0] != &raw[0] {
			t.Fatalf("View of FromBytes: %v", err)
		}
	})
}

func (b *Buffer) mustSlice(t *testing.T, i, j int) *Buffer {
	t.Helper()
	s, err := b.Slice(i, j)
	if err != nil {
		t.Fatalf("Slice(%d, %d) of %v: %v", i, j, b, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMakeOverflowingCount(t *testing.T) {
	watch(t)
	n := 1<<61 + 1
	b, v, err := Make[float64](n)
	if err == nil {
		defer b.Close()
		t.Fatalf("Make[float64](%d) succeeded with a buffer of %d bytes and a view of %d elements", n, b.Len(), len(v))
	}
	wantErr(t, err, ErrRange)
}

func TestSlice(t *testing.T) {
	watch(t)
	b := mustNew(t, 32)
	copy(b.Bytes(), "0123456789abcdefghijklmnopqrstuv")
	s := b.mustSlice(t, 4, 10)
	if string(s.Bytes()) != "456789" || s.Len() != 6 || cap(s.Bytes()) != 6 || !s.Shared() {
		t.Fatalf("Slice(4, 10) = %q, cap %d", s.Bytes(), cap(s.Bytes()))
	}
	name, off, n, ok := s.Ref()
	if !ok || name != nameOf(t, b) || off != 4 || n != 6 {
		t.Fatalf("Ref of a slice: %q %d %d %v", name, off, n, ok)
	}
	if got := s.String(); got != fmt.Sprintf("shm.Buffer(6 bytes at 4 of %s)", name) {
		t.Fatalf("String = %q", got)
	}
	// A slice of a slice counts from the slice.
	ss := s.mustSlice(t, 1, 3)
	if string(ss.Bytes()) != "56" {
		t.Fatalf("slice of slice: %q", ss.Bytes())
	}
	if _, off, _, _ := ss.Ref(); off != 5 {
		t.Fatalf("slice of slice offset %d", off)
	}
	ss.Bytes()[0] = 'X'
	if b.Bytes()[5] != 'X' {
		t.Fatal("a slice is not the same memory")
	}
	// Bounds.
	for _, c := range [][2]int{{-1, 2}, {3, 2}, {0, 33}, {33, 33}, {math.MinInt, 0}, {0, math.MaxInt}} {
		x, err := b.Slice(c[0], c[1])
		if x != nil {
			t.Errorf("Slice(%d, %d) returned a buffer", c[0], c[1])
		}
		wantErr(t, err, ErrRange, "slice", "32 bytes")
	}
	_, err := s.Slice(0, 7)
	wantErr(t, err, ErrRange, "6 bytes")
	for _, c := range [][2]int{{0, 0}, {32, 32}, {0, 32}} {
		b.mustSlice(t, c[0], c[1])
	}
	// Slices of ordinary memory are ordinary memory.
	f := FromBytes([]byte("hello"))
	fs, err := f.Slice(1, 3)
	if err != nil || string(fs.Bytes()) != "el" || cap(fs.Bytes()) != 2 || fs.Shared() {
		t.Fatalf("Slice of FromBytes: %q, %v", fs.Bytes(), err)
	}
	_, err = f.Slice(2, 6)
	wantErr(t, err, ErrRange)
}

// refsOf returns the count of this process's Buffers on segment name, -1 if
// the process does not map it.
func refsOf(name string) int {
	mapped.Lock()
	defer mapped.Unlock()
	if s := mapped.byName[name]; s != nil {
		return s.refs
	}
	return -1
}

// slotsOfMapped reports whether this process maps segment name.
func slotsOfMapped(name string) []*segment {
	mapped.Lock()
	defer mapped.Unlock()
	if s := mapped.byName[name]; s != nil {
		return []*segment{s}
	}
	return nil
}

func TestFromBytes(t *testing.T) {
	raw := []byte("abc")
	b := FromBytes(raw)
	if b.Shared() || b.Len() != 3 || &b.Bytes()[0] != &raw[0] {
		t.Fatal("FromBytes is not its bytes")
	}
	if name, off, n, ok := b.Ref(); ok || name != "" || off != 0 || n != 0 {
		t.Fatalf("Ref of FromBytes: %q %d %d %v", name, off, n, ok)
	}
	if s := b.String(); s != "shm.Buffer(3 bytes, not shared)" {
		t.Fatalf("String = %q", s)
	}
	if _, err := b.Transit(os.Getpid()); err == nil || !strings.Contains(err.Error(), "not shared") {
		t.Fatalf("Transit of FromBytes: %v", err)
	}
	if FromBytes(nil).Len() != 0 {
		t.Fatal("FromBytes(nil)")
	}
}

// touch writes into b, and returns the fault that makes, if any.
func touch(b []byte) (err any) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() { err = recover() }()
	b[0]++
	return nil
}
