//go:build linux

package shm

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// namedEnv names the variable that, set to 1, makes this package's tests
// run macOS's way of making segments on Linux: no unnamed files (each
// segment named as it is made), no fallocate (ftruncate), no populated
// mappings, in a directory that is not /dev/shm.
const namedEnv = "SHM_TEST_NAMED"

func init() {
	if os.Getenv(namedEnv) == "1" {
		tmpfile = func(string) (int, error) { return -1, unix.EOPNOTSUPP }
		allocate = func(int, int64) error { return unix.ENOTSUP }
		populate = 0
	}
}

// TestPortablePath runs this package's tests again in a child process, the
// way macOS makes its segments (see namedEnv), in a directory of the
// test's: the path macOS takes is run here, not only built.
func TestPortablePath(t *testing.T) {
	if os.Getenv(namedEnv) == "1" {
		t.Skip("runs the others, in its child")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.v", "-test.count=1",
		"-test.skip=^(TestPortablePath|TestFullDevShm|TestReadOnlyDevShm|TestHelperFull)$")
	if testing.Short() {
		cmd.Args = append(cmd.Args, "-test.short")
	}
	cmd.Env = append(os.Environ(), namedEnv+"=1", "PROCESSIONAL_SHM_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the tests, macOS's way, in %s: %v\n%s", dir, err, out)
	}
	passed := strings.Count(string(out), "--- PASS")
	if passed < 20 {
		t.Fatalf("the tests, macOS's way: %d passed, want them all:\n%s", passed, out)
	}
	t.Logf("the tests, macOS's way: %d passed", passed)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the tests, macOS's way, left %d files in %s", len(entries), dir)
	}
}
