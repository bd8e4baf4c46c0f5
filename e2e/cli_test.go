//go:build linux

package e2e

import (
	"bufio"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/processional/processional/master"
)

// processional runs the binary with args and returns its output and exit
// code.
func processional(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(testCtx(t), binProcessional, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("processional %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func TestCommands(t *testing.T) {
	srv := startServer(t, binProcessional)
	conn := []string{"--nats", srv.url, "--token", srv.token}
	// A worker joins the server's NATS.
	w := exec.Command(binProcessional, append([]string{"worker", "--id", "w-cli"}, conn...)...)
	out, err := w.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Process.Kill()
		if w.ProcessState == nil {
			w.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "worker w-cli serving on") {
		t.Fatalf("worker said %q, %v", line, err)
	}
	stdout, stderr, code := processional(t, append([]string{"ls"}, conn...)...)
	if code != 0 || !strings.Contains(stdout, "w-cli") || !strings.Contains(stdout, "server") || !strings.Contains(stdout, "sum") {
		t.Fatalf("ls (%d):\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = processional(t, append([]string{"call", "--worker", "w-cli"}, append(conn, "sum", "[1,2,3]")...)...)
	if code != 0 || strings.TrimSpace(stdout) != "6" {
		t.Fatalf("call sum (%d): %q %s", code, stdout, stderr)
	}
	_, stderr, code = processional(t, append([]string{"call", "--worker", "w-cli"}, append(conn, "nope", "1")...)...)
	if code != 1 || !strings.Contains(stderr, `unknown function "nope"`) || !strings.Contains(stderr, "sum") {
		t.Fatalf("call nope (%d): %s", code, stderr)
	}
	_, stderr, code = processional(t, append([]string{"call", "--worker", "w-cli"}, append(conn, "sum", `[1,"x"]`)...)...)
	if code != 1 || !strings.Contains(stderr, "wrong argument type") || !strings.Contains(stderr, "[]int") {
		t.Fatalf("call sum with a string (%d): %s", code, stderr)
	}
	stdout, stderr, code = processional(t, "demo", "--nats", srv.url, "--token", srv.token, "--worker", "w-cli")
	if code != 0 || !strings.Contains(stdout, "worker w-cli") || !strings.Contains(stdout, "9. Close") {
		t.Fatalf("demo on a worker of the server (%d):\n%s%s", code, stdout, stderr)
	}
	stdout, _, code = processional(t, append([]string{"pending", "--worker", "w-cli"}, conn...)...)
	if code != 0 || !strings.Contains(stdout, "MASTER") {
		t.Fatalf("pending (%d): %s", code, stdout)
	}
	stdout, _, code = processional(t, append([]string{"stack", "--worker", "w-cli"}, conn...)...)
	if code != 0 || !strings.Contains(stdout, "goroutine ") {
		t.Fatalf("stack (%d): %.300s", code, stdout)
	}
	// SIGTERM: the worker finishes and exits cleanly.
	w.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- w.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not exit on SIGTERM")
	}
}

func TestUnreachableNATS(t *testing.T) {
	start := time.Now()
	_, stderr, code := processional(t, "ls", "--nats", "nats://127.0.0.1:1", "--retries", "2")
	if code != 1 || !strings.Contains(stderr, "retrying (1/2)") || !strings.Contains(stderr, "cannot reach the NATS server at nats://127.0.0.1:1 after 2 attempts") {
		t.Fatalf("ls against nothing (%d, %s): %s", code, time.Since(start), stderr)
	}
}

// A worker of another protocol version that joins a pool is left out (and
// logged); a pool of only such workers has no members.
func TestPoolRefusesOtherProtocol(t *testing.T) {
	m := newMaster(t)
	start := func(binary, id string) {
		t.Helper()
		w := exec.Command(binary, "worker", "--nats", m.URL(), "--token", m.Token(), "--pool", "vp", "--id", id)
		out, err := w.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Process.Kill(); w.Wait() })
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || !strings.Contains(line, "serving") {
			t.Fatalf("worker %s said %q, %v", id, line, err)
		}
	}
	start(binMismatch, "w-v99")
	ctx := testCtx(t)
	if _, err := m.Pool(ctx, "vp"); !errors.Is(err, master.ErrNoMembers) {
		t.Fatalf("a pool of a worker of another protocol only: %v", err)
	}
	start(binProcessional, "w-ours")
	p, err := m.Pool(ctx, "vp")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if ms := p.Members(); len(ms) != 1 || ms[0].ID() != "w-ours" {
		t.Fatalf("members %v, want w-ours only", ms)
	}
}

// processional call prints a stream's items, one per line, and with
// --progress (the default on a terminal) the call's progress on a line
// of stderr, cleared at the end; without it, no progress at all.
func TestCallStreamAndProgress(t *testing.T) {
	srv := startServer(t, binProcessional)
	conn := []string{"--nats", srv.url, "--token", srv.token}
	out, errOut, code := processional(t, append([]string{"call", "--progress"}, append(conn, "count", "3")...)...)
	if code != 0 || out != "1\n2\n3\n" {
		t.Fatalf("call --progress count 3: exit %d, stdout %q, stderr %q; want 1 2 3", code, out, errOut)
	}
	if !strings.Contains(errOut, `count: {"done":1,"of":3}`) || !strings.HasSuffix(errOut, "\r\x1b[K") {
		t.Fatalf("call --progress count 3: stderr %q; want the progress line, then cleared", errOut)
	}
	out, errOut, code = processional(t, append([]string{"call", "--progress=false"}, append(conn, "count", "2")...)...)
	if code != 0 || out != "1\n2\n" || errOut != "" {
		t.Fatalf("call --progress=false count 2: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	_, errOut, code = processional(t, append([]string{"call"}, append(conn, "count", "-1")...)...)
	if code != 1 || !strings.Contains(errOut, "negative count") {
		t.Fatalf("call count -1: exit %d, stderr %q; want the stream's error", code, errOut)
	}
}
