//go:build unix

package shm

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

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
