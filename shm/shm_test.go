package shm

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
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

func TestOpenSameProcess(t *testing.T) {
	watch(t)
	b := mustNew(t, 64)
	name := nameOf(t, b)
	o, err := Open(name, 16, 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Len() != 8 || !o.Shared() {
		t.Fatalf("Open: %v", o)
	}
	copy(o.Bytes(), "via open")
	if string(b.Bytes()[16:24]) != "via open" {
		t.Fatal("a write through Open is not seen through New's buffer")
	}
	copy(b.Bytes()[16:], "via new!")
	if string(o.Bytes()) != "via new!" {
		t.Fatal("a write through New's buffer is not seen through Open's")
	}
	if &o.Bytes()[0] != &b.Bytes()[16] {
		t.Fatal("Open in the same process maps the segment again")
	}
	if s := slotsFor(t, name, os.Getpid()); len(s) != 1 {
		t.Fatalf("this process has %d slots, want 1", len(s))
	}
	// Edges of the range.
	for _, c := range [][2]int{{0, 64}, {64, 0}, {0, 0}, {63, 1}} {
		x, err := Open(name, c[0], c[1], 0)
		if err != nil {
			t.Fatalf("Open(%d, %d): %v", c[0], c[1], err)
		}
		if x.Len() != c[1] {
			t.Fatalf("Open(%d, %d): Len %d", c[0], c[1], x.Len())
		}
		x.Close()
	}
	b.Close()
	wantExists(t, name, true) // o holds it
	o.Close()
	wantExists(t, name, false)
}

func TestOpenRefusesBadNames(t *testing.T) {
	watch(t)
	hexes := strings.Repeat("ab", 12)
	for _, name := range []string{
		"", "foo", "../etc/passwd", "/etc/passwd", Prefix, Prefix + "zz" + hexes[2:],
		Prefix + hexes[1:], Prefix + hexes + "0", Prefix + "../../../etc/passwd/////",
		Prefix + hexes[:22] + "/.", Prefix + hexes[:23] + "\x00", Dir + "/" + Prefix + hexes,
		"processional_" + hexes, strings.ToUpper(Prefix) + hexes,
	} {
		b, err := Open(name, 0, 0, 0)
		if b != nil {
			t.Fatalf("Open(%q) returned a buffer", name)
		}
		wantErr(t, err, ErrNoSegment, "not a processional segment name")
	}
	// Nor does DropTransit touch anything with them.
	DropTransit("../etc/passwd", 1)
	DropTransit(Prefix+hexes, 0)
}

func TestOpenMissingSegment(t *testing.T) {
	watch(t)
	name := randName()
	_, err := Open(name, 0, 1, 0)
	wantErr(t, err, ErrNoSegment, name)
	wantExists(t, name, false)
	// A segment closed is gone.
	b, _ := New(8)
	name = nameOf(t, b)
	b.Close()
	_, err = Open(name, 0, 8, 0)
	wantErr(t, err, ErrNoSegment)
	wantExists(t, name, false)
	DropTransit(name, 12345) // nothing to drop
	wantExists(t, name, false)
}

func TestOpenRange(t *testing.T) {
	watch(t)
	b, err := New(16)
	if err != nil {
		t.Fatal(err)
	}
	name := nameOf(t, b)
	for _, c := range [][2]int{
		{0, 17}, {17, 0}, {16, 1}, {1, 16}, {-1, 1}, {0, -1}, {-1, -1},
		{math.MaxInt, 1}, {1, math.MaxInt}, {math.MaxInt, math.MaxInt},
		{8, math.MaxInt - 4}, // off+n overflows to a small number
		{math.MinInt, 0}, {0, math.MinInt}, {math.MinInt, math.MaxInt},
	} {
		o, err := Open(name, c[0], c[1], 0)
		if o != nil {
			t.Fatalf("Open(%d, %d) returned a buffer of %d bytes", c[0], c[1], o.Len())
		}
		wantErr(t, err, ErrRange)
	}
	if s := slotsFor(t, name, os.Getpid()); len(s) != 1 {
		t.Fatalf("%d slots after refused opens", len(s))
	}
	refs := refsOf(name)
	if refs != 1 {
		t.Fatalf("refs %d after refused opens, want 1", refs)
	}
	b.Close()
	wantExists(t, name, false)
}

// An Open refused for its range, of a segment this process did not map,
// maps it and releases it at once.
func TestOpenRangeOfUnmappedSegment(t *testing.T) {
	watch(t)
	b, err := New(16)
	if err != nil {
		t.Fatal(err)
	}
	name := nameOf(t, b)
	nonce, err := b.Transit(os.Getpid()) // keeps the segment once b is closed
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	wantExists(t, name, true)
	if len(slotsOfMapped(name)) != 0 {
		t.Fatal("still mapped")
	}
	_, err = Open(name, 8, 9, 0)
	wantErr(t, err, ErrRange, "which has 16")
	if len(slotsOfMapped(name)) != 0 {
		t.Fatal("a refused Open left the segment mapped")
	}
	if s := headerSlots(t, name); len(s) != 1 || s[0].nonce != nonce {
		t.Fatalf("slots %+v after a refused Open, want the transit only", s)
	}
	wantExists(t, name, true)
	// With the nonce, the refused Open still clears the transit, and the
	// segment goes.
	_, err = Open(name, 17, 0, nonce)
	wantErr(t, err, ErrRange)
	wantExists(t, name, false)
}

func TestHoldersCountedInProcess(t *testing.T) {
	watch(t)
	b := mustNew(t, 8)
	name := nameOf(t, b)
	var bufs []*Buffer
	for i := range 3 * numSlots {
		o, err := Open(name, i%8, 0, 0)
		if err != nil {
			t.Fatalf("Open #%d: %v", i, err)
		}
		bufs = append(bufs, o)
	}
	if s := headerSlots(t, name); len(s) != 1 || int(s[0].pid) != os.Getpid() {
		t.Fatalf("%d Opens take slots %+v, want one", len(bufs), s)
	}
	for _, o := range bufs {
		o.Close()
	}
	wantExists(t, name, true)
	b.Close()
	wantExists(t, name, false)
}

func TestTransitToSelfAndFull(t *testing.T) {
	watch(t)
	b, err := New(8)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	name := nameOf(t, b)
	var nonces []uint64
	for i := 1; i < numSlots; i++ {
		nonce, err := b.Transit(os.Getpid())
		if err != nil {
			t.Fatalf("Transit #%d: %v", i, err)
		}
		if nonce == 0 || (len(nonces) > 0 && nonce == nonces[len(nonces)-1]) {
			t.Fatalf("nonce %d", nonce)
		}
		if nonce>>32 != uint64(os.Getpid()) {
			t.Fatalf("nonce %x does not carry the pid %d", nonce, os.Getpid())
		}
		nonces = append(nonces, nonce)
	}
	_, err = b.Transit(os.Getpid())
	wantErr(t, err, ErrFull, fmt.Sprint(numSlots), "holders")
	// Holders are full, but this process has its slot: Opens still work.
	o, err := Open(name, 0, 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	for _, n := range nonces {
		DropTransit(name, n)
	}
	if s := headerSlots(t, name); len(s) != 1 || s[0].nonce != 0 {
		t.Fatalf("slots %+v after DropTransit of all", s)
	}
	b.Close()
	wantExists(t, name, false)
}

func TestTransitToMissingProcess(t *testing.T) {
	watch(t)
	b := mustNew(t, 8)
	for _, pid := range []int{0, -1, math.MaxInt32, math.MinInt32, deadPID(t)} {
		_, err := b.Transit(pid)
		if err == nil || !strings.Contains(err.Error(), "no process") {
			t.Fatalf("Transit(%d): %v", pid, err)
		}
	}
	if s := headerSlots(t, nameOf(t, b)); len(s) != 1 {
		t.Fatalf("failed transits left slots %+v", s)
	}
}

func TestDropTransit(t *testing.T) {
	watch(t)
	t.Run("open buffer", func(t *testing.T) {
		b, _ := New(8)
		name := nameOf(t, b)
		nonce, err := b.Transit(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if s := slotsFor(t, name, os.Getpid()); len(s) != 2 {
			t.Fatalf("slots %+v, want a holder and a transit", s)
		}
		DropTransit(name, nonce)
		DropTransit(name, nonce) // a second time: nothing left to drop
		if s := slotsFor(t, name, os.Getpid()); len(s) != 1 || s[0].nonce != 0 {
			t.Fatalf("slots %+v after DropTransit", s)
		}
		if b.Bytes() == nil {
			t.Fatal("DropTransit closed the buffer")
		}
		b.Close()
		wantExists(t, name, false)
	})
	t.Run("closed buffer", func(t *testing.T) {
		b, _ := New(8)
		name := nameOf(t, b)
		nonce, err := b.Transit(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		wantExists(t, name, true) // the transit holds it
		DropTransit(name, nonce+1)
		wantExists(t, name, true) // another nonce: nothing dropped
		DropTransit(name, nonce)
		wantExists(t, name, false)
	})
	t.Run("open with the nonce", func(t *testing.T) {
		b, _ := New(8)
		name := nameOf(t, b)
		copy(b.Bytes(), "transit!")
		nonce, _ := b.Transit(os.Getpid())
		b.Close()
		o, err := Open(name, 0, 8, nonce)
		if err != nil {
			t.Fatal(err)
		}
		if string(o.Bytes()) != "transit!" {
			t.Fatalf("Open after transit: %q", o.Bytes())
		}
		if s := headerSlots(t, name); len(s) != 1 || s[0].nonce != 0 {
			t.Fatalf("slots %+v: the transit was not cleared", s)
		}
		o.Close()
		wantExists(t, name, false)
	})
}

func TestDomain(t *testing.T) {
	d := Domain()
	if d == "" || Domain() != d {
		t.Fatalf("Domain %q, then %q", d, Domain())
	}
	if os.Getenv("PROCESSIONAL_SHM_DOMAIN") == "" && len(d) != 16 {
		t.Fatalf("Domain %q: want 16 hex digits", d)
	}
}

func TestGarbageCollectedBufferReleases(t *testing.T) {
	watch(t)
	gone := func(name string) bool {
		for range 100 {
			if !exists(name) {
				return true
			}
			runtime.GC()
			time.Sleep(5 * time.Millisecond)
		}
		return false
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
	for range 5 {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
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

// touch writes into b, and returns the fault that makes, if any.
func touch(b []byte) (err any) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() { err = recover() }()
	b[0]++
	return nil
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
