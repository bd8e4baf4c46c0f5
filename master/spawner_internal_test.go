package master

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/processional/processional/embedded"
)

// TestNoSpawnerUntilSpawn: a master that spawns nothing locks no thread,
// so its Close ends none (and kills no child forked from it).
func TestNoSpawnerUntilSpawn(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	m, err := New(context.Background(), WithNATS(srv.URL(), srv.Token()))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	if strings.Contains(stacks, "(*Master).spawner") {
		t.Errorf("a master that spawned nothing runs a spawner thread")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}
