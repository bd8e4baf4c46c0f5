//go:build linux

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/processional/processional/internal/proctest"
)

// TestTour builds examples/tour, the program the README's tour is taken
// from, runs it as a real process, and checks what it prints, that it
// exits with status 0, and that the worker it spawned went with it.
func TestTour(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tour")
	if out, err := exec.Command("go", "build", "-o", bin, "../examples/tour").CombinedOutput(); err != nil {
		t.Fatalf("go build ../examples/tour: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(testCtx(t), bin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err := cmd.Run()
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever a failed run left behind
	if err != nil {
		t.Fatalf("tour: %v (want exit status 0)\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	want := []string{
		"goroutine: 42 <nil>",
		"slave thread: 6 <nil>",
		"worker: 6 <nil>",
		"scheduled: 9 <nil>",
		"cancelled: context canceled",
	}
	if got := strings.Split(strings.TrimSpace(stdout.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tour printed:\n%s\nwant:\n%s\nstderr:\n%s", &stdout, strings.Join(want, "\n"), &stderr)
	}
	if left := proctest.Under(dir); len(left) > 0 {
		t.Errorf("the tour's worker outlived it: pids %v", left)
	}
}

// TestTourInREADME checks that the README's tour is an excerpt of
// examples/tour, unchanged: the code a newcomer reads is the code that runs.
func TestTourInREADME(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../examples/tour/main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, tour, ok := strings.Cut(string(readme), "## A tour in code")
	if !ok {
		t.Fatal("README: no section \"A tour in code\"")
	}
	_, block, ok := strings.Cut(tour, "```go\n")
	if ok {
		block, _, ok = strings.Cut(block, "```")
	}
	if !ok {
		t.Fatal("README: no go block in the tour")
	}
	if !strings.Contains(string(src), block) {
		t.Errorf("README's tour is not an excerpt of examples/tour/main.go:\n%s", block)
	}
}
