package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/embedded"
	"github.com/processional/processional/master"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goTool returns the go command, or skips the test without one.
func goTool(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	return gobin
}

// TestLinksNoNATSServer keeps the worker-only binary free of nats-server,
// and names the package that would bring it back: linking it doubles the
// binary and adds its pages to every idle worker's resident memory.
func TestLinksNoNATSServer(t *testing.T) {
	pkgs := []string{".", "../../worker", "../../builtin", "../../bus", "../../internal/cli"}
	out, err := exec.Command(goTool(t), append([]string{"list", "-f", `{{.ImportPath}} {{join .Deps " "}}`}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(pkgs) {
		t.Fatalf("go list %v: %d lines, want %d:\n%s", pkgs, len(lines), len(pkgs), out)
	}
	for _, line := range lines {
		pkg, deps, _ := strings.Cut(line, " ")
		for _, dep := range strings.Fields(deps) {
			if strings.HasPrefix(dep, "github.com/nats-io/nats-server") {
				t.Errorf("%s links %s; run `go list -deps %s` to see through what", pkg, dep, pkg)
				break
			}
		}
	}
}

// binary builds this command into a directory the test removes.
func binary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "processional-worker")
	if out, err := exec.Command(goTool(t), "build", "-o", path, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return path
}

// TestServesBuiltins runs the binary both ways a worker runs: joining a
// server with the worker command's flags, and spawned by a master.
func TestServesBuiltins(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	echo := func(t *testing.T, s *master.Slave) {
		t.Helper()
		got, err := master.Invoke(ctx, s, builtin.Echo, []byte("lean"))
		if err != nil || string(got) != "lean" {
			t.Fatalf("echo: %q, %v", got, err)
		}
	}
	t.Run("joined", func(t *testing.T) {
		srv, err := embedded.Start(embedded.Options{Port: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		cmd := exec.Command(bin, "--nats", srv.URL(), "--id", "lean-1", "--retries", "1")
		cmd.Env = append(os.Environ(), "PROCESSIONAL_TOKEN="+srv.Token())
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if !strings.HasPrefix(line, "worker lean-1 serving on ") {
			t.Fatalf("first line %q, %v; want it to say the worker serves", line, err)
		}
		s, err := master.Connect(ctx, srv.URL(), master.WithToken(srv.Token()), master.WithServerID("lean-1"))
		if err != nil {
			t.Fatal(err)
		}
		echo(t, s)
		s.Close()
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("after SIGTERM: %v, want exit 0", err)
		}
	})
	t.Run("spawned", func(t *testing.T) {
		m, err := master.New(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		s, err := m.Spawn(ctx, master.WithBinary(bin), master.WithOutput(os.Stderr, os.Stderr))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		echo(t, s)
	})
}

func TestBadFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--help"}, 0},
		{[]string{"--no-such-flag"}, 2},
		{[]string{"extra-argument"}, 2},
		{[]string{"--max-pending", "0"}, 1},
		{[]string{"--nats", "nats://127.0.0.1:1", "--retries", "1"}, 1},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := exec.Command(bin, tc.args...).CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, out)
			}
		})
	}
}
