package bench

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
	"github.com/processional/processional/shm"
)

// shmShared reports whether the buffer the worker received is in shared
// memory: false when it was copied, as to another host.
var shmShared = bus.Register("bench.test.shmShared", func(_ context.Context, b *shm.Buffer) (bool, error) {
	return b.Shared(), nil
})

// testBinary is this test binary, which TestMain makes a worker and a
// baseline child when it is spawned as one.
func testBinary(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// copy_10mb_remote's worker believes it is on another host: a buffer sent
// to it arrives copied, where the lane worker's arrives shared.
func TestRemoteWorkerIsAnotherHost(t *testing.T) {
	ctx := context.Background()
	e := NewEnv(testBinary(t))
	defer e.Close()
	if err := e.worker(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.remoteWorker(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := shm.New(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, tc := range []struct {
		name string
		s    *master.Slave
		want bool
	}{{"the lane worker", e.slave, true}, {"the remote worker", e.remote, false}} {
		got, err := master.Invoke(ctx, tc.s, shmShared, b)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: a buffer arrives with Shared() %v, want %v", tc.name, got, tc.want)
		}
	}
}

// structs_10mb's value is about 10 MB of msgpack, with varied names.
func TestPointsSize(t *testing.T) {
	ps := makePoints(structsLen)
	data, err := msgpack.Marshal(ps)
	if err != nil {
		t.Fatal(err)
	}
	if r := float64(len(data)) / bigSize; r < 0.95 || r > 1.05 {
		t.Errorf("%d bytes of msgpack, want about %d", len(data), bigSize)
	}
	names := map[string]bool{}
	for _, p := range ps {
		names[p.Name] = true
		if len(p.Name) > 8 {
			t.Fatalf("name %q: want short names", p.Name)
		}
	}
	if len(names) < 100 {
		t.Errorf("%d distinct names, want varied ones", len(names))
	}
}

// The new big rows run, briefly, with every process they spawn closed
// (TestMain's goleak, and the Env's Close, see to it): the remote worker,
// and a fresh worker for each _first operation.
func TestRunBigRows(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns workers and moves 10 MB values")
	}
	rows, err := Run(context.Background(), Options{Only: []string{"copy_10mb_remote", "shm_cold_10mb_first"}, Rounds: 1, Scale: 0.1, Binary: testBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name)
		if r.Value <= 0 || r.BaselineValue <= 0 {
			t.Errorf("row %+v: want positive figures", r)
		}
	}
	if got := strings.Join(names, ","); got != "nats_chunks_10mb,copy_10mb_remote,shm_cold_10mb_first" {
		t.Fatalf("rows %s", got)
	}
}
