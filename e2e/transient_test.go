//go:build linux

package e2e

import (
	"bufio"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/processional/processional/internal/proctest"
)

// Big values go between a master and its worker in transient
// shared-memory segments. Killed with SIGKILL while such values are in
// flight both ways, 100 times each side, they leave nothing in the
// directory of segments once a sweep has run.
func TestTransientKillLoops(t *testing.T) {
	rounds := 100
	if testing.Short() {
		rounds = 5
	}
	// The two loops run side by side: each kills only its own processes,
	// in a directory of its own.
	t.Run("worker", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		out, err := bigflood(dir, "workerkill", strconv.Itoa(rounds)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ok") {
			t.Fatalf("bigflood workerkill %d: %v\n%s", rounds, err, out)
		}
		sweptClean(t, dir)
	})
	t.Run("master", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		for i := range rounds {
			cmd := bigflood(dir, "flood")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(stdout).ReadString('\n')
			pid, perr := strconv.Atoi(strings.TrimSpace(line))
			if err != nil || perr != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("round %d: bigflood printed %q: %v", i, line, err)
			}
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond) // somewhere mid-transfer
			cmd.Process.Kill()
			cmd.Wait()
			// Its worker learns of its death from the lane, at once
			// (asserted within 10 s, a bound for a loaded machine: what
			// this test proves is the segments swept, not the speed).
			if !proctest.Gone(pid, 10*time.Second) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("round %d: worker %d outlived its killed master by 10 s", i, pid)
			}
		}
		sweptClean(t, dir)
	})
}

// bigflood is the command bigflood with args, its segments in dir.
func bigflood(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(binBigflood, args...)
	cmd.Env = append(os.Environ(), "PROCESSIONAL_SHM_DIR="+dir)
	return cmd
}

// sweptClean runs a sweep on dir, as the next master on the host would,
// and checks that no segment is left there.
func sweptClean(t *testing.T, dir string) {
	t.Helper()
	if out, err := bigflood(dir, "sweep").CombinedOutput(); err != nil {
		t.Fatalf("bigflood sweep: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if len(left) > 0 {
		for _, name := range left {
			hdr, _ := os.ReadFile(dir + "/" + name)
			t.Logf("%s: %d bytes, header %x", name, len(hdr), hdr[:min(len(hdr), 160)])
		}
		t.Fatalf("%d segments left after the kills and a sweep: %v", len(left), left)
	}
}

// /dev/shm full: big values go in the message, on each road, and nothing
// is left in it.
func TestTransientFullDevShm(t *testing.T) {
	proctest.NeedRoot(t, "to mount a small tmpfs")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=1777"); err != nil {
		t.Fatalf("root cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	out, err := bigflood(dir, "echo", strconv.Itoa(2<<20)).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok 0 0") {
		t.Fatalf("bigflood echo 2 MiB with a 1 MiB /dev/shm: %v\n%s", err, out)
	}
	// With room, the same values go in transient segments by NATS (the
	// lane takes them in its frames): one argument sent, one result
	// received.
	out, err = bigflood(t.TempDir(), "echo", strconv.Itoa(2<<20)).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok 1 1") {
		t.Fatalf("bigflood echo 2 MiB: %v\n%s", err, out)
	}
	sweptClean(t, dir)
}
