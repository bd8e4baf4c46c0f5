//go:build linux

package e2e

// The stock nats CLI (natscli v0.5.0, built from the module proxy) calls
// a worker's stream by the request-many convention: each item one
// message, an empty message at the end.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// natsCLIVersion is the nats CLI the tests build.
const natsCLIVersion = "v0.5.0"

// natsCLI builds the nats CLI into a directory of the test's, and returns
// its path.
func natsCLI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "install", "github.com/nats-io/natscli/nats@"+natsCLIVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
	cmd.Dir = dir // outside this module: the CLI's own go.mod rules
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install natscli %s: %v\n%s", natsCLIVersion, err, out)
	}
	return filepath.Join(dir, "nats")
}

func TestNATSCLIStream(t *testing.T) {
	nats := natsCLI(t)
	srv := startServer(t, binProcessional)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req := func(arg string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, nats, "--server", srv.url, "--token", srv.token,
			"req", "proc.server.json.count", arg, "--replies", "0", "--wait-for-empty", "--raw")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("nats req count %s: %v\n%s", arg, err, out)
		}
		return string(out)
	}
	var items []string
	for _, line := range strings.Split(req("5"), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			items = append(items, line)
		}
	}
	// The CLI prints the empty message that ends the stream as "nil body".
	if strings.Join(items, " ") != "1 2 3 4 5 nil body" {
		t.Fatalf("nats req count 5 --replies 0 --wait-for-empty printed %q, want 1 to 5", items)
	}
	if out := req(`"five"`); !strings.Contains(out, "bus.ErrArgumentType") || !strings.Contains(out, "expects int") {
		t.Fatalf("nats req count \"five\": %s; want the argument's error, then the end", out)
	}
}
