//go:build linux

package e2e

// The Windows builds, run for real under Wine: the demo (a master with a
// spawned worker, its Job Object and its process watch), a server and a
// pool worker over TCP called from a Linux master, the clear error of a
// Unix socket where the system has none, and the Job Object taking a
// killed master's worker and grandchild along. .ci/run installs Wine
// (Debian's wine64) and sets $PROCESSIONAL_WINE to its loader and
// $WINEPREFIX; without them the test is skipped. Wine is not Windows:
// what it proves is that the Windows code paths run and behave, on a
// system that implements the same calls.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

// EnvWine names the variable that gives the path of Wine's loader
// (wine64), for TestWindowsUnderWine.
const EnvWine = "PROCESSIONAL_WINE"

// wine runs Windows binaries built for a test.
type wine struct {
	loader string // wine64
	server string // wineserver, beside it
	dir    string // the Windows binaries
}

// newWine builds the Windows binaries into a directory of the test's, or
// skips the test when Wine is not set up. At the end of the test it kills
// what still runs of them, and the Wine server.
func newWine(t *testing.T) *wine {
	t.Helper()
	loader := os.Getenv(EnvWine)
	if loader == "" {
		t.Skipf("$%s is not set: .ci/run, as root, installs Wine and sets it", EnvWine)
	}
	if os.Getenv("WINEPREFIX") == "" {
		t.Fatalf("$%s is set but $WINEPREFIX is not: the tests' Wine needs a prefix of its own", EnvWine)
	}
	w := &wine{loader: loader, server: filepath.Join(filepath.Dir(loader), "wineserver"), dir: t.TempDir()}
	build := exec.Command("go", "build", "-o", w.dir+"/", "../cmd/processional", "./testdata/winjob")
	build.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build for windows: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		for pid := range w.procs() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if out, err := exec.Command(w.server, "-k").CombinedOutput(); err != nil && len(out) > 0 {
			t.Logf("wineserver -k: %v: %s", err, out)
		}
		exec.Command(w.server, "-w").Run() // until it is gone
		if left := w.procs(); len(left) > 0 {
			t.Errorf("Windows processes outlived the test: %v", left)
		}
	})
	return w
}

// command runs exe, one of the binaries built, under Wine.
func (w *wine) command(ctx context.Context, exe string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, w.loader, append([]string{filepath.Join(w.dir, exe)}, args...)...)
	cmd.Env = append(os.Environ(), "WINEDEBUG=-all")
	return cmd
}

// procs returns the Linux processes that run a binary of w.dir, by pid,
// with their command lines: Wine names a process it starts by its
// Windows path (Z:\tmp\...), the one it was given by its Unix path.
func (w *wine) procs() map[int]string {
	winDir := `Z:` + strings.ReplaceAll(w.dir, "/", `\`)
	entries, _ := os.ReadDir("/proc")
	found := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		line := strings.ReplaceAll(string(b), "\x00", " ")
		if err != nil || !strings.Contains(line, w.dir) && !strings.Contains(line, winDir) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && strings.Contains(string(stat), ") Z ") {
			continue // a zombie: gone but for its parent's wait
		}
		found[pid] = line
	}
	return found
}

// startLine starts cmd and returns once it printed a line holding want on
// its stdout, with the lines it printed; the rest of its output is
// discarded.
func startLine(t *testing.T, cmd *exec.Cmd, want string) []string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan []string, 1)
	go func() { // ends when the process does, or its output
		var seen []string
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\n')
			seen = append(seen, strings.TrimSpace(line))
			if strings.Contains(line, want) || err != nil {
				lines <- seen
				io.Copy(io.Discard, r)
				return
			}
		}
	}()
	select {
	case seen := <-lines:
		if !strings.Contains(seen[len(seen)-1], want) {
			t.Fatalf("%s ended its output without %q: %q", cmd.Args[1], want, seen)
		}
		return seen
	case <-time.After(time.Minute):
		t.Fatalf("%s printed no %q within a minute", cmd.Args[1], want)
	}
	return nil
}

func TestWindowsUnderWine(t *testing.T) {
	w := newWine(t)
	ctx := testCtx(t)

	t.Run("demo", func(t *testing.T) {
		out, err := w.command(ctx, "processional.exe", "demo").CombinedOutput()
		if err != nil {
			t.Fatalf("processional.exe demo: %v\n%s", err, out)
		}
		for _, want := range []string{"master.Spawn(ctx)", "this system shares none", "9. Close", "Invoke on the closed slave"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("the demo's output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("server over TCP", func(t *testing.T) {
		lines := startLine(t, w.command(ctx, "processional.exe", "server", "--listen", "127.0.0.1:0"), "token:")
		var url, token string
		for _, l := range lines {
			if v, ok := strings.CutPrefix(l, "url:"); ok {
				url = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(l, "token:"); ok {
				token = strings.TrimSpace(v)
			}
		}
		s, err := master.Connect(ctx, url, master.WithToken(token))
		if err != nil {
			t.Fatalf("connect to the Windows server at %q: %v", url, err)
		}
		defer s.Close()
		if n, err := master.Invoke(ctx, s, builtin.Sum, []int{1, 2, 3}); err != nil || n != 6 {
			t.Fatalf("sum on the Windows server: %d, %v", n, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a Unix socket where there is none", func(t *testing.T) {
		// Wine has no AF_UNIX, as Windows before 10 (1803): the server says
		// so, and which capability.
		out, err := w.command(ctx, "processional.exe", "server", "--listen", "127.0.0.1:0", "--socket", filepath.Join(t.TempDir(), "s")).CombinedOutput()
		if err == nil {
			t.Skipf("this Wine serves on a Unix socket: %s", out)
		}
		if !strings.Contains(string(out), "Unix sockets on windows") || !strings.Contains(string(out), "unsupported") {
			t.Fatalf("the server's error names no missing Unix sockets: %v\n%s", err, out)
		}
	})

	t.Run("pool worker over TCP, killed", func(t *testing.T) {
		m := newMaster(t)
		startLine(t, w.command(ctx, "processional.exe", "worker", "--nats", m.URL(), "--token", m.Token(), "--pool", "winpool", "--id", "winw"), "serving")
		p, err := m.Pool(ctx, "winpool")
		if err != nil {
			t.Fatal(err)
		}
		if n, err := master.Invoke(ctx, p, builtin.Sum, []int{4, 5}); err != nil || n != 9 {
			t.Fatalf("sum on the Windows pool worker: %d, %v", n, err)
		}
		pending := master.Schedule(ctx, p, builtin.Sleep, time.Hour)
		pids := w.procs()
		if len(pids) != 1 {
			t.Fatalf("Windows processes: %v, want the worker alone", pids)
		}
		for pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if err := waitErr(ctx, pending); !errors.Is(err, bus.ErrWorkerLost) {
			t.Fatalf("a call pending on the killed Windows worker: %v, want ErrWorkerLost", err)
		}
	})

	for _, tc := range []struct {
		name    string
		args    []string
		persist bool
	}{
		{"job object: the master killed takes worker and grandchild along", nil, false},
		{"job object: a persisted worker's grandchild lives on", []string{"persist"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := w.command(ctx, "winjob.exe", tc.args...)
			startLine(t, cmd, "ready")
			var worker, grandchild int
			for pid, line := range w.procs() {
				switch {
				case pid == cmd.Process.Pid:
				case strings.Contains(line, "grandchild"):
					grandchild = pid
				default:
					worker = pid
				}
			}
			if worker == 0 || grandchild == 0 {
				t.Fatalf("Windows processes %v: want the master %d, its worker and the worker's child", w.procs(), cmd.Process.Pid)
			}
			clock, err := watchExits(worker, grandchild)
			if err != nil {
				t.Fatal(err)
			}
			defer clock.finish()
			start := time.Now()
			cmd.Process.Kill()
			cmd.Wait()
			took, running, ok := clock.wait(start, hangBound)
			if !tc.persist {
				if !ok {
					t.Fatalf("worker %d and grandchild %d: %v outlived their master by %s", worker, grandchild, running, hangBound)
				}
				t.Logf("the master killed: its worker and the worker's child gone after %s", took.Round(time.Millisecond))
				return
			}
			// Persisted: the worker exits once its master's server is gone,
			// but the job no longer kills: its child lives on.
			if ok || len(running) != 1 || running[0] != grandchild {
				t.Fatalf("a persisted worker's processes still running %s after its master's kill: %v, want its child %d alone", hangBound, running, grandchild)
			}
		})
	}
}
