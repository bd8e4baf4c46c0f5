//go:build unix

package serve

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/embedded"
	"github.com/processional/processional/internal/lane"
	"github.com/processional/processional/internal/wire"
)

var laneEcho = bus.Register("serve_lane_test.echo", func(_ context.Context, b []byte) ([]byte, error) { return b, nil })

// laneWorker serves a worker owned by tMaster on a real NATS server, with
// a lane whose master end it returns. lost receives what OnLaneLost is
// called with.
func laneWorker(t *testing.T) (w *Worker, master *lane.Conn, lost chan error) {
	t.Helper()
	nc := natsConn(t, embedded.Options{})
	mine, theirs, err := lane.Pair()
	if err != nil {
		t.Fatal(err)
	}
	// As a worker does: Inherit takes a bare descriptor and closes it; the
	// *os.File lets go of its own, which its finalizer would close again.
	fd, err := syscall.Dup(int(theirs.Fd()))
	theirs.Close()
	if err != nil {
		t.Fatal(err)
	}
	workerEnd, err := lane.Inherit(fd)
	if err != nil {
		t.Fatal(err)
	}
	lost = make(chan error, 1)
	w, err = Serve(nc, Config{ID: "w-lane-test", Owner: tMaster, Lane: workerEnd, OnLaneLost: func(err error) { lost <- err }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	master = lane.New(mine, 1<<30, nil)
	t.Cleanup(func() { master.Close() })
	return w, master, lost
}

func laneCall(t *testing.T, id uint64, arg []byte) []byte {
	t.Helper()
	data, err := wire.AppendCall(nil, &wire.Call{Kind: wire.KindCall, Master: tMaster, ID: id, Function: laneEcho.Name()}, arg)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Calls pipelined on the lane are all answered, in order.
func TestLanePipelined(t *testing.T) {
	_, m, _ := laneWorker(t)
	const n = 100_000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			if err := m.Write(lane.Call, laneCall(t, uint64(i+1), []byte("0123456789abcdef"))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range n {
		f, err := m.Read()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		id, _, remote, err := wire.DecodeReply(f.Body)
		if err != nil || remote != nil || f.Kind != lane.Reply || id != uint64(i+1) {
			t.Fatalf("reply %d: %s id %d, %v %v", i, f.Kind, id, remote, err)
		}
	}
	wg.Wait()
}

// Garbage from the master ends the lane, named, and tells the worker its
// owner is lost.
func TestLaneGarbageFromMaster(t *testing.T) {
	_, m, lost := laneWorker(t)
	m.Write(lane.Reply, []byte("a reply, which only a worker sends"))
	select {
	case err := <-lost:
		if !errors.Is(err, bus.ErrBadPayload) {
			t.Fatalf("lane lost with %v, want ErrBadPayload", err)
		}
		t.Log(err)
	case <-time.After(10 * time.Second):
		t.Fatal("garbage on the lane went unnoticed")
	}
	if _, err := m.Read(); !lane.Ended(err) {
		t.Fatalf("the master's end after garbage: %v, want the lane's end", err)
	}
}
