//go:build unix

package master

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
)

// TestDialledLane spawns a worker that dials its lane, as every worker
// does on Windows ($PROCESSIONAL_LANE=dial here): the master's calls go
// on it, and once the worker is SIGKILLed the call pending on it fails
// with ErrWorkerLost. The master's death through that lane is the e2e
// TestMasterKilledLaneAlone's, dialled.
func TestDialledLane(t *testing.T) {
	t.Setenv(EnvLane, "dial")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h, err := m.Spawn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Terminate()
	if h.lane == nil || !h.lane.Dialled() {
		t.Fatal("the worker has no dialled lane")
	}
	pid, err := Invoke(ctx, h, builtin.Getpid, struct{}{})
	if err != nil || pid != h.PID() {
		t.Fatalf("getpid on the dialled lane: %d, %v; want %d", pid, err, h.PID())
	}
	if !h.laneLive() {
		t.Fatal("the master's calls do not go on the dialled lane")
	}
	pending := Schedule(ctx, h, builtin.Sleep, time.Hour)
	if _, err := Thread(ctx, h, builtin.Getpid, struct{}{}).Wait(ctx); err != nil { // the sleep runs
		t.Fatal(err)
	}
	if err := syscall.Kill(h.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := pending.Wait(ctx); !errors.Is(err, bus.ErrWorkerLost) {
		t.Fatalf("a call pending on a SIGKILLed worker: %v, want ErrWorkerLost", err)
	}
}
