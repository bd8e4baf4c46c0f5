//go:build unix

package shm

import (
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests here cross processes: the test binary runs itself as a child
// (see runChild), which opens the parent's segments by name, and makes
// segments of its own.

func TestChildSeesSameMemory(t *testing.T) {
	watch(t)
	b := mustNew(t, 64)
	name := nameOf(t, b)
	copy(b.Bytes()[8:], "from parent")
	c := startChild(t)
	i := c.open(name, 8, 16, 0)
	if got := c.do("read %s", i)[0]; got != hex.EncodeToString(b.Bytes()[8:24]) {
		t.Fatalf("child reads %s", got)
	}
	c.do("write %s 0 %x", i, "from child!")
	if got := string(b.Bytes()[8:19]); got != "from child!" {
		t.Fatalf("parent sees %q", got)
	}
	// The child holds a slot of its own, besides the parent's.
	if s := slotsFor(t, name, c.pid); len(s) != 1 || s[0].start != startTime(c.pid) || s[0].nonce != 0 {
		t.Fatalf("child slots %+v", s)
	}
	// A slice's reference opens at its offset in the child.
	s := b.mustSlice(t, 32, 40)
	_, off, n, _ := s.Ref()
	j := c.open(name, off, n, 0)
	c.do("write %s 0 %x", j, "8 bytes!")
	if string(s.Bytes()) != "8 bytes!" {
		t.Fatalf("slice sees %q", s.Bytes())
	}
	// Many opens in the child: still one slot.
	for range 10 {
		c.open(name, 0, 1, 0)
	}
	if s := slotsFor(t, name, c.pid); len(s) != 1 {
		t.Fatalf("child slots %+v after many opens", s)
	}
}

func TestChildOutlivesParentBuffer(t *testing.T) {
	watch(t)
	t.Run("child closes last", func(t *testing.T) {
		b, _ := New(16)
		name := nameOf(t, b)
		c := startChild(t)
		i := c.open(name, 0, 16, 0)
		b.Close()
		wantExists(t, name, true)
		c.do("write %s 0 %x", i, "alone")
		c.do("close %s", i)
		wantExists(t, name, false)
	})
	t.Run("child releases all and exits", func(t *testing.T) {
		b, _ := New(16)
		name := nameOf(t, b)
		c := startChild(t)
		c.open(name, 0, 16, 0)
		c.open(name, 4, 4, 0)
		b.Close()
		wantExists(t, name, true)
		c.do("release")
		wantExists(t, name, false)
		c.exit()
	})
	t.Run("child exits first, parent closes last", func(t *testing.T) {
		b, _ := New(16)
		name := nameOf(t, b)
		c := startChild(t)
		c.open(name, 0, 16, 0)
		c.exit() // without releasing: its slot names a dead process
		c.gone()
		wantExists(t, name, true)
		b.Close()
		wantExists(t, name, false)
	})
	t.Run("parent closes last", func(t *testing.T) {
		b, _ := New(16)
		name := nameOf(t, b)
		c := startChild(t)
		i := c.open(name, 0, 16, 0)
		c.do("close %s", i)
		wantExists(t, name, true)
		if s := slotsFor(t, name, c.pid); len(s) != 0 {
			t.Fatalf("the child's slot is still there: %+v", s)
		}
		b.Close()
		wantExists(t, name, false)
	})
}

func TestChildOpenRefused(t *testing.T) {
	watch(t)
	b := mustNew(t, 16)
	name := nameOf(t, b)
	c := startChild(t)
	for _, r := range [][2]int{{0, 17}, {16, 1}, {9223372036854775807, 1}, {8, 9223372036854775803}, {-1, 0}} {
		_, kind, msg := c.try("open %s %d %d 0", name, r[0], r[1])
		if kind != "range" || !strings.Contains(msg, "out of range") {
			t.Fatalf("child Open(%d, %d): %s %s", r[0], r[1], kind, msg)
		}
	}
	// The refused opens left no slot of the child, nor a mapping.
	if s := slotsFor(t, name, c.pid); len(s) != 0 {
		t.Fatalf("child slots %+v after refused opens", s)
	}
	_, kind, _ := c.try("open %s 0 1 0", randName())
	if kind != "nosegment" {
		t.Fatalf("child Open of a missing segment: %s", kind)
	}
	_, kind, _ = c.try("open foo 0 1 0")
	if kind != "nosegment" {
		t.Fatalf("child Open of foo: %s", kind)
	}
	b.Close()
	wantExists(t, name, false)
}

func TestKilledHolderSwept(t *testing.T) {
	watch(t)
	b, _ := New(16)
	name := nameOf(t, b)
	c := startChild(t)
	c.open(name, 0, 16, 0)
	b.Close()
	wantExists(t, name, true)
	c.kill()
	// Nobody released it; from now on any Sweep on the host (another
	// package's test starting a master) may remove it, so its presence is
	// not asserted here: sweepOrphan accepts either.
	c.gone()
	sweepOrphan(t, name)
}

// A killed creator's segment is removed by a survivor when it is done.
func TestKilledCreatorSurvivorRemoves(t *testing.T) {
	watch(t)
	c := startChild(t)
	f := c.do("new 32")
	name := f[1]
	c.do("write %s 0 %x", f[0], "by the dead")
	c.kill()
	o, err := Open(name, 0, 32, 0)
	if errors.Is(err, ErrNoSegment) {
		// Another process's Sweep (a master starting in another
		// package's test) removed it first: also a survivor's doing.
		t.Logf("%s already swept by another process", name)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(o.Bytes()), "by the dead") {
		t.Fatalf("survivor reads %q", o.Bytes())
	}
	o.Close()
	wantExists(t, name, false)
}

func TestSweepSparesLiveHolders(t *testing.T) {
	watch(t)
	own := mustNew(t, 8)
	c := startChild(t)
	f := c.do("new 8")
	childs := f[1]
	shared := mustNew(t, 8) // held by both
	sharedName := nameOf(t, shared)
	c.open(sharedName, 0, 8, 0)
	// held by the child only, after the parent closed its buffer
	lone, _ := New(8)
	lname := nameOf(t, lone)
	c.open(lname, 0, 8, 0)
	lone.Close()
	// held by a transit to this process only
	tr, _ := New(8)
	trName := nameOf(t, tr)
	nonce, err := tr.Transit(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tr.Close()
	defer DropTransit(trName, nonce)

	sweepAll(t)
	for _, name := range []string{nameOf(t, own), childs, sharedName, lname, trName} {
		wantExists(t, name, true)
	}
	// Another process's Sweep spares them too.
	if len(initialOrphans) == 0 { // else it would touch them
		c.do("sweep")
	}
	for _, name := range []string{nameOf(t, own), childs, sharedName, lname, trName} {
		wantExists(t, name, true)
	}
	DropTransit(trName, nonce)
	wantExists(t, trName, false)
	c.do("close %s", f[0])
	wantExists(t, childs, false)
	c.kill() // lname's only holder: from now on any Sweep on the host may remove it
	c.gone()
	shared.Close() // its other holder is dead: the segment goes
	wantExists(t, nameOf(t, own), true)
	wantExists(t, sharedName, false)
	sweepOrphan(t, lname)
}

func TestTransitToChild(t *testing.T) {
	watch(t)
	t.Run("child opens", func(t *testing.T) {
		b, _ := New(16)
		name := nameOf(t, b)
		copy(b.Bytes(), "in transit")
		c := startChild(t)
		nonce, err := b.Transit(c.pid)
		if err != nil {
			t.Fatal(err)
		}
		if nonce == 0 {
			t.Fatal("nonce 0")
		}
		s := slotsFor(t, name, c.pid)
		if len(s) != 1 || s[0].nonce != nonce || s[0].start != startTime(c.pid) {
			t.Fatalf("transit slot %+v", s)
		}
		b.Close()
		wantExists(t, name, true) // the transit holds it
		sweepAll(t)
		wantExists(t, name, true) // even against Sweep
		i := c.open(name, 0, 16, nonce)
		if got, _ := hex.DecodeString(c.do("read %s", i)[0]); !strings.HasPrefix(string(got), "in transit") {
			t.Fatalf("child reads %q", got)
		}
		s = slotsFor(t, name, c.pid)
		if len(s) != 1 || s[0].nonce != 0 {
			t.Fatalf("after the child's Open, its slots are %+v: want a holder, no transit", s)
		}
		c.exit()
		wantExists(t, name, true)
		c.gone()
		sweepOrphan(t, name)
	})
	t.Run("child opens and closes", func(t *testing.T) {
		b, _ := New(16)
		name := nameOf(t, b)
		c := startChild(t)
		nonce, _ := b.Transit(c.pid)
		b.Close()
		i := c.open(name, 0, 16, nonce)
		wantExists(t, name, true)
		c.do("close %s", i)
		wantExists(t, name, false)
	})
	t.Run("nonce used by another process", func(t *testing.T) {
		b, _ := New(16)
		name := nameOf(t, b)
		c := startChild(t)
		nonce, _ := b.Transit(c.pid)
		// This process opens, and drops, with the child's nonce: the
		// child's transit stays.
		o, err := Open(name, 0, 16, nonce)
		if err != nil {
			t.Fatal(err)
		}
		o.Close()
		DropTransit(name, nonce)
		if s := slotsFor(t, name, c.pid); len(s) != 1 || s[0].nonce != nonce {
			t.Fatalf("child slots %+v, want its transit", s)
		}
		b.Close()
		wantExists(t, name, true)
		i := c.open(name, 0, 16, nonce)
		c.do("close %s", i)
		wantExists(t, name, false)
	})
	t.Run("child drops", func(t *testing.T) {
		b, _ := New(16)
		name := nameOf(t, b)
		c := startChild(t)
		nonce, _ := b.Transit(c.pid)
		b.Close()
		// The child opens with another nonce: its transit stays.
		i := c.open(name, 0, 16, nonce+1)
		c.do("close %s", i)
		wantExists(t, name, true)
		if s := slotsFor(t, name, c.pid); len(s) != 1 || s[0].nonce != nonce {
			t.Fatalf("slots %+v", s)
		}
		// A refused open with the right nonce clears it.
		_, kind, _ := c.try("open %s 0 17 %d", name, nonce)
		if kind != "range" {
			t.Fatalf("kind %s", kind)
		}
		wantExists(t, name, false)
	})
	t.Run("child killed after parent closed", func(t *testing.T) {
		b, _ := New(16)
		name := nameOf(t, b)
		c := startChild(t)
		if _, err := b.Transit(c.pid); err != nil {
			t.Fatal(err)
		}
		b.Close()
		c.kill() // from now on any Sweep on the host may remove it
		c.gone()
		sweepOrphan(t, name)
	})
	t.Run("child killed before parent closed", func(t *testing.T) {
		b, _ := New(16)
		name := nameOf(t, b)
		c := startChild(t)
		if _, err := b.Transit(c.pid); err != nil {
			t.Fatal(err)
		}
		c.kill()
		c.gone()
		b.Close() // the transit's process is dead: the segment goes
		wantExists(t, name, false)
	})
}

// A transit slot is reserved for its receiver; the receiver's Open should
// not need another one.
func TestTransitReceiverOnFullHeader(t *testing.T) {
	watch(t)
	b, _ := New(8)
	name := nameOf(t, b)
	c := startChild(t)
	nonce, err := b.Transit(c.pid)
	if err != nil {
		t.Fatal(err)
	}
	var mine []uint64
	defer func() {
		for _, n := range mine {
			DropTransit(name, n)
		}
		c.kill()
		c.gone()
		b.Close()
	}()
	for {
		n, err := b.Transit(os.Getpid())
		if err != nil {
			wantErr(t, err, ErrFull)
			break
		}
		mine = append(mine, n)
	}
	_, kind, msg := c.try("open %s 0 8 %d", name, nonce)
	if kind != "" {
		t.Fatalf("the receiver of a transit cannot open it: %s %s", kind, msg)
	}
}

// A holder killed, but not reaped yet by its parent, is a zombie: it holds
// nothing any more.
func TestZombieHolder(t *testing.T) {
	watch(t)
	b, _ := New(16)
	name := nameOf(t, b)
	c := startChild(t)
	c.open(name, 0, 16, 0)
	c.cmd.Process.Signal(syscall.SIGKILL)
	deadline := time.Now().Add(timeout)
	for !zombie(c.pid) {
		if time.Now().After(deadline) {
			t.Fatal("the child is not a zombie")
		}
		time.Sleep(time.Millisecond)
	}
	// The package may remember a process's start time for a moment: wait
	// until it sees the zombie dead.
	for deadline := time.Now().Add(timeout); alive(c.pid, c.start); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Close()
			c.kill()
			sweepAll(t)
			t.Fatalf("the zombie %d is still seen alive after %s", c.pid, timeout)
		}
	}
	b.Close()
	exists := exists(name)
	c.kill() // reaps it
	if exists {
		c.gone()
		sweepAll(t)
		t.Fatal("the segment of a closed buffer, whose other holder is a zombie, is still there")
	}
}

func zombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && strings.Contains(string(stat), ") Z ")
}

func TestDomainInChild(t *testing.T) {
	c := startChild(t)
	if got := c.do("domain")[0]; os.Getenv("PROCESSIONAL_SHM_DOMAIN") == "" && got != Domain() {
		t.Fatalf("child's Domain %q, parent's %q: same host, same /dev/shm", got, Domain())
	}
	c2 := startChild(t, "PROCESSIONAL_SHM_DOMAIN=elsewhere")
	if got := c2.do("domain")[0]; got != "elsewhere" {
		t.Fatalf("child's Domain %q with PROCESSIONAL_SHM_DOMAIN=elsewhere", got)
	}
	// Computed once: the same answer again.
	if got := c2.do("domain")[0]; got != "elsewhere" {
		t.Fatalf("child's second Domain %q", got)
	}
}

// A transient segment whose sender died before it let go of it (before
// it sent the reference, or as it did) is held by its transit no longer:
// the sweep removes it though its receiver lives. One whose sender let go
// is held for the receiver, who reads it and so removes it; and a buffer
// of New whose sender died holding it is held for the receiver too.
func TestTransientSenderKilled(t *testing.T) {
	watch(t)
	c := startChild(t)
	died := c.do("sendtransient 64 %d", os.Getpid())
	sent := c.do("sendtransient 64 %d", os.Getpid())
	c.do("sent %s", sent[0])
	plain := c.do("new 64")
	plainNonce, err := strconv.ParseUint(c.do("transit %s %d", plain[0], os.Getpid())[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	c.kill()
	c.gone()
	if _, err := Sweep(); err != nil {
		t.Fatal(err)
	}
	wantExists(t, died[1], false)
	nonce, _ := strconv.ParseUint(sent[2], 10, 64)
	if b, err := ReceiveTransient(sent[1], 64, nonce, nil); err != nil || len(b) != 64 {
		t.Fatalf("the receiver reads %s after its sender's death: %d bytes, %v", sent[1], len(b), err)
	}
	wantExists(t, sent[1], false)
	b, err := Open(plain[1], 0, 64, plainNonce)
	if err != nil {
		t.Fatalf("the receiver opens %s after its sender's death: %v", plain[1], err)
	}
	b.Close()
	wantExists(t, plain[1], false)
}
