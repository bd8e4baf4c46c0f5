package master

import (
	"runtime"
	"strings"
	"testing"
)

// TestNoSpawnerUntilSpawn: a master that spawns nothing locks no thread,
// so its Close ends none (and kills no child forked from it).
func TestNoSpawnerUntilSpawn(t *testing.T) {
	_, m := embeddedMaster(t)
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	if strings.Contains(stacks, "(*Master).spawner") {
		t.Errorf("a master that spawned nothing runs a spawner thread")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}
