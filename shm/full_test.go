//go:build linux

package shm

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/processional/processional/internal/proctest"
)

// mountTmpfs mounts a tmpfs of size bytes (read-only if ro) on a fresh
// directory, for the length of the test. It needs root; as root, a mount
// refused fails the test.
func mountTmpfs(t *testing.T, size string, ro bool) string {
	t.Helper()
	proctest.NeedRoot(t, "to mount a tmpfs")
	dir := t.TempDir()
	var flags uintptr
	if ro {
		flags = unix.MS_RDONLY
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, "size="+size+",mode=1777"); err != nil {
		t.Fatalf("root cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// inDir runs the test named run in a child process whose segments live in
// dir, and returns its output.
func inDir(t *testing.T, dir, run string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.v")
	cmd.Env = append(os.Environ(), "PROCESSIONAL_SHM_DIR="+dir, "SHM_TEST_IN_DIR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", run, dir, err, out)
	}
	return string(out)
}

func TestFullDevShm(t *testing.T) {
	dir := mountTmpfs(t, "1m", false)
	out := inDir(t, dir, "TestHelperFull")
	if !strings.Contains(out, "full: ok") {
		t.Fatalf("child:\n%s", out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a refused segment left %d files", len(entries))
	}
}

func TestReadOnlyDevShm(t *testing.T) {
	dir := mountTmpfs(t, "1m", true)
	out := inDir(t, dir, "TestHelperFull")
	if !strings.Contains(out, "read-only: ok") {
		t.Fatalf("child:\n%s", out)
	}
}

// TestHelperFull runs in the child of the tests above.
func TestHelperFull(t *testing.T) {
	if os.Getenv("SHM_TEST_IN_DIR") == "" {
		t.Skip("runs in a child process")
	}
	_, err := New(4 << 20)
	var st unix.Statfs_t
	unix.Statfs(Dir, &st)
	switch {
	case errors.Is(err, ErrFull) && strings.Contains(err.Error(), "no room"):
		t.Log("full: ok")
	case err != nil && errors.Is(err, unix.EROFS):
		t.Log("read-only: ok")
	default:
		t.Fatalf("New(4 MiB) in %s: %v", Dir, err)
	}
}
