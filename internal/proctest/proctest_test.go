package proctest_test

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/processional/processional/internal/proctest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestGoneAndUnder(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if proctest.Gone(pid, 0) {
		t.Fatal("a running process is gone")
	}
	exe, _ := os.Readlink("/proc/" + itoa(pid) + "/exe")
	if !slices.Contains(proctest.Under(exe), pid) {
		t.Fatalf("Under(%q) lacks %d", exe, pid)
	}
	cmd.Process.Kill()
	// Not reaped yet: a zombie counts as gone.
	if !proctest.Gone(pid, 5*time.Second) {
		t.Fatal("a killed process is not gone")
	}
	cmd.Wait()
	if !proctest.Gone(pid, 0) {
		t.Fatal("a reaped process is not gone")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestNeedRoot(t *testing.T) {
	root := os.Geteuid() == 0
	var passed bool
	t.Run("sub", func(t *testing.T) {
		proctest.NeedRoot(t, "to test NeedRoot")
		passed = true
	})
	if passed != root {
		t.Fatalf("root %v: NeedRoot let the test go on: %v", root, passed)
	}
}

func TestNoRaceExitSleep(t *testing.T) {
	for _, tc := range []struct{ before, after string }{
		{"", "atexit_sleep_ms=0"},
		{"halt_on_error=1", "halt_on_error=1 atexit_sleep_ms=0"},
		{"atexit_sleep_ms=50", "atexit_sleep_ms=50"},
	} {
		t.Setenv("GORACE", tc.before)
		proctest.NoRaceExitSleep()
		if got := os.Getenv("GORACE"); got != tc.after {
			t.Errorf("GORACE %q became %q, want %q", tc.before, got, tc.after)
		}
	}
}
