//go:build unix

package shm

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/processional/processional/internal/proctest"
)

// The tests here write segment files by hand (makeCrafted), to check how
// Open and Sweep treat what other processes, dead, alive or hostile, left in
// /dev/shm.

const nobody = 65534

func TestSweepRemovesDeadSegments(t *testing.T) {
	watch(t)
	if len(initialOrphans) > 0 {
		t.Logf("pre-existing orphans %v: Sweep is replaced by sweeps of this test's segments", initialOrphans)
	}
	dead := deadPID(t)
	me := int32(os.Getpid())
	removed := map[string]string{
		"dead holder": makeCrafted(t, craft{dataSize: 8, slots: []slotInfo{{i: 0, pid: int32(dead), start: 1}}}),
		"reused pid":  makeCrafted(t, craft{dataSize: 8, slots: []slotInfo{{i: 3, pid: me, start: self.start + 1}}}),
		"no holder":   makeCrafted(t, craft{dataSize: 0}),
		"dead transit": makeCrafted(t, craft{dataSize: 8, slots: []slotInfo{
			{i: 0, pid: int32(dead), start: 7, nonce: 99}, {i: numSlots - 1, pid: me, start: 0}}}),
		"old incomplete": makeCrafted(t, craft{dataSize: 8, noMagic: true, age: 2 * time.Minute}),
		"old short":      makeCrafted(t, craft{fileSize: 100, age: 2 * time.Minute}),
		"old empty":      makeCrafted(t, craft{fileSize: -1, age: 2 * time.Minute}),
	}
	kept := map[string]string{
		"live holder":      makeCrafted(t, craft{dataSize: 8, slots: []slotInfo{{i: 5, pid: me, start: self.start}}}),
		"live transit":     makeCrafted(t, craft{dataSize: 8, slots: []slotInfo{{i: numSlots - 1, pid: me, start: self.start, nonce: 1}}}),
		"fresh incomplete": makeCrafted(t, craft{dataSize: 8, noMagic: true}),
		"fresh short":      makeCrafted(t, craft{fileSize: 100}),
		"fresh empty":      makeCrafted(t, craft{fileSize: -1}),
	}
	present := 0 // not swept by another process already
	for _, name := range removed {
		if exists(name) {
			present++
		}
	}
	n := sweepAll(t)
	if n < present {
		t.Errorf("Sweep removed %d, want at least %d", n, present)
	}
	for what, name := range removed {
		if exists(name) {
			t.Errorf("%s: %s not swept", what, name)
		}
	}
	for what, name := range kept {
		if !exists(name) {
			t.Errorf("%s: %s swept", what, name)
		}
	}
}

func TestSweepLeavesOthers(t *testing.T) {
	watch(t)
	deadSlots := []slotInfo{{i: 0, pid: int32(deadPID(t)), start: 1}}
	old := 2 * time.Minute
	var kept []string
	for _, name := range []string{
		Prefix + strings.Repeat("g", 24),
		Prefix + randomName()[1:],
		Prefix + randomName() + "0",
		Prefix + randomName() + ".bak",
		Prefix,
		"processional_" + randomName(),
	} {
		kept = append(kept, makeCraftedAt(t, name, craft{dataSize: 8, slots: deadSlots, age: old}))
	}
	// A symbolic link with a segment's name, to a dead segment under
	// another name.
	target := makeCraftedAt(t, "processional-target-"+randomName(), craft{dataSize: 8, slots: deadSlots, age: old})
	link := randName()
	if err := os.Symlink(target, Dir+"/"+link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(Dir + "/" + link) })
	kept = append(kept, link, target)
	// A directory with a segment's name.
	dir := randName()
	if err := os.Mkdir(Dir+"/"+dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(Dir + "/" + dir) })
	old2 := time.Now().Add(-old)
	os.Chtimes(Dir+"/"+dir, old2, old2)
	kept = append(kept, dir)
	// Segments of another user, dead or incomplete.
	if os.Getuid() == 0 {
		kept = append(kept,
			makeCrafted(t, craft{dataSize: 8, slots: deadSlots, uid: nobody, age: old}),
			makeCrafted(t, craft{dataSize: 8, uid: nobody, age: old, noMagic: true}),
			makeCrafted(t, craft{fileSize: 10, uid: nobody, age: old}))
	} else {
		t.Log("not root: no file of another user")
	}
	sweepAll(t)
	for _, name := range kept {
		if !exists(name) {
			t.Errorf("%s swept", name)
		}
	}
	if fi, err := os.Lstat(Dir + "/" + link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symbolic link is no longer one: %v", err)
	}
	if b, err := os.ReadFile(Dir + "/" + target); err != nil || len(b) != headerSize+8 {
		t.Errorf("the link's target changed: %d bytes, %v", len(b), err)
	}
}

// Sweep opens every file with a segment's name to read its header; a FIFO
// blocks that open until a writer comes. Anyone can make one in /dev/shm.
func TestSweepFIFO(t *testing.T) {
	watch(t)
	name := randName()
	path := Dir + "/" + name
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	done := make(chan struct{})
	go func() {
		sweepAll(t)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		// Let the blocked open through, so as not to leak the goroutine.
		for {
			fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK, 0)
			if err == nil {
				unix.Close(fd)
				break
			}
			time.Sleep(time.Millisecond)
		}
		<-done
		t.Fatal("Sweep blocked on a FIFO named like a segment")
	}
	wantExists(t, name, true)
}

// A slot reserved by claim (pid -1) counts as held for ever: the segment of
// a process killed between claim's two steps is never removed.
func TestSweepStuckReservation(t *testing.T) {
	watch(t)
	name := makeCrafted(t, craft{dataSize: 8, age: time.Hour, slots: []slotInfo{{i: 0, pid: -1, start: 0}}})
	sweepAll(t)
	if exists(name) {
		t.Fatal("a segment whose only slot is a stale reservation is never swept")
	}
}

func TestOpenCrafted(t *testing.T) {
	watch(t)
	t.Run("dead holders", func(t *testing.T) {
		dead := deadPID(t)
		name := makeCrafted(t, craft{dataSize: 16, slots: []slotInfo{
			{i: 0, pid: int32(dead), start: 1},
			{i: 1, pid: int32(os.Getpid()), start: self.start + 1}, // a reused pid
		}})
		b, err := Open(name, 0, 16, 0)
		if errors.Is(err, ErrNoSegment) && !exists(name) {
			t.Skip("another process swept the crafted segment first")
		}
		if err != nil {
			t.Fatal(err)
		}
		s := headerSlots(t, name)
		if len(s) != 2 || int(s[0].pid) != os.Getpid() || s[0].start != self.start || s[1].start != self.start+1 {
			t.Fatalf("slots %+v: want this process in the first dead slot", s)
		}
		b.Close()
		wantExists(t, name, false) // no live holder left
	})
	t.Run("live holders", func(t *testing.T) {
		live := []slotInfo{{i: 0, pid: int32(os.Getpid()), start: self.start}}
		name := makeCrafted(t, craft{dataSize: 16, slots: live})
		b, err := Open(name, 0, 16, 0)
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		wantExists(t, name, true)
	})
	t.Run("full", func(t *testing.T) {
		var all []slotInfo
		for i := range numSlots {
			all = append(all, slotInfo{i: i, pid: int32(os.Getpid()), start: self.start})
		}
		name := makeCrafted(t, craft{dataSize: 16, slots: all})
		b, err := Open(name, 0, 16, 0)
		if b != nil {
			t.Fatal("Open of a full segment")
		}
		wantErr(t, err, ErrFull, "holders")
		if len(slotsOfMapped(name)) != 0 {
			t.Fatal("mapped")
		}
	})
	t.Run("not segments", func(t *testing.T) {
		for what, c := range map[string]craft{
			"shorter than its header": {fileSize: 100},
			"empty":                   {fileSize: -1},
			"without magic":           {dataSize: 8, noMagic: true},
			"size beyond the file":    {dataSize: 1 << 20, fileSize: headerSize + 8},
			"huge size":               {dataSize: 1 << 63, fileSize: headerSize + 8},
		} {
			name := makeCrafted(t, c)
			b, err := Open(name, 0, 0, 0)
			if b != nil {
				t.Fatalf("%s: Open returned a buffer", what)
			}
			wantErr(t, err, ErrNoSegment, name)
			if len(slotsOfMapped(name)) != 0 {
				t.Fatalf("%s: mapped", what)
			}
		}
	})
	t.Run("another user", func(t *testing.T) {
		proctest.NeedRoot(t, "to make a file of another user")
		name := makeCrafted(t, craft{dataSize: 8, uid: nobody})
		_, err := Open(name, 0, 8, 0)
		wantErr(t, err, ErrNoSegment, "another user")
		if s := headerSlots(t, name); len(s) != 0 {
			t.Fatalf("Open wrote into another user's file: %+v", s)
		}
		DropTransit(name, 1)
		if s := headerSlots(t, name); len(s) != 0 {
			t.Fatalf("DropTransit wrote into another user's file: %+v", s)
		}
	})
	t.Run("symbolic link", func(t *testing.T) {
		target := makeCraftedAt(t, "processional-target-"+randomName(), craft{dataSize: 8})
		link := randName()
		if err := os.Symlink(target, Dir+"/"+link); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(Dir + "/" + link) })
		b, err := Open(link, 0, 8, 0)
		if err == nil {
			b.Close()
			t.Fatal("Open followed a symbolic link")
		}
		if s := headerSlots(t, target); len(s) != 0 {
			t.Fatalf("Open wrote through a symbolic link: %+v", s)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := randName()
		if err := os.Mkdir(Dir+"/"+dir, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(Dir + "/" + dir) })
		if _, err := Open(dir, 0, 0, 0); err == nil {
			t.Fatal("Open of a directory")
		}
	})
	t.Run("fifo", func(t *testing.T) {
		name := randName()
		if err := syscall.Mkfifo(Dir+"/"+name, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(Dir + "/" + name) })
		_, err := Open(name, 0, 0, 0) // O_RDWR: does not block
		wantErr(t, err, ErrNoSegment)
	})
}
