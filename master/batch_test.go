package master_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
)

// seqArg is a call to Seq: its number, and padding to make it weigh.
type seqArg struct {
	I   int
	Pad []byte
}

var (
	seqMu   sync.Mutex
	seqLast = -1
)

// Seq records the calls of one worker process in the order they run,
// and returns the number of the one before.
var Seq = bus.Register("test.seq", func(ctx context.Context, a seqArg) (int, error) {
	seqMu.Lock()
	defer seqMu.Unlock()
	prev := seqLast
	seqLast = a.I
	return prev, nil
})

// Calls sent in a burst by NATS go in batches, none past the server's
// max payload, and keep their order, their cancels and their results.
func TestBatchedCalls(t *testing.T) {
	m := master.NewOnSmallServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := spawn(t, m, master.WithoutLane())

	// A spy on the worker's call subject sees what travels.
	var msgs, batches, calls, biggest atomic.Int64
	spy, err := m.Conn().Subscribe(wire.CallSubject(s.ID()), func(msg *nats.Msg) {
		msgs.Add(1)
		biggest.Store(max(biggest.Load(), int64(len(msg.Data))))
		var b wire.Received
		if wire.IsCallBatch(msg.Data) {
			if err := wire.DecodeCallBatch(msg.Data, &b); err != nil {
				t.Errorf("a batch the master sent does not decode: %v", err)
			}
			batches.Add(1)
			calls.Add(int64(len(b.IDs)))
			return
		}
		calls.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Unsubscribe()
	m.Conn().Flush()

	const n, cancelled = 3000, 1500
	pad := make([]byte, 700) // 3000 calls: 2 MiB, many batches of 64 KiB
	tasks := make([]*master.Task[int], n)
	threads := make([]*master.Task[int], 0, n/100)
	for i := range tasks {
		cctx := ctx
		var stop context.CancelFunc
		if i == cancelled {
			cctx, stop = context.WithCancel(ctx)
		}
		tasks[i] = master.Schedule(cctx, s, Seq, seqArg{I: i, Pad: pad})
		if stop != nil {
			stop() // in the outbox, or on its way: either way it fails, and the order holds
		}
		if i%100 == 0 {
			threads = append(threads, master.Thread(ctx, s, Sum, []int{i, 1}))
		}
	}
	for i, task := range tasks {
		prev, err := task.Wait(ctx)
		switch {
		case i == cancelled:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("the cancelled call: %d, %v", prev, err)
			}
		case err != nil:
			t.Fatalf("call %d: %v", i, err)
		case i == cancelled+1 && (prev == cancelled || prev == cancelled-1):
			// The cancelled call ran, or was cancelled before it did.
		case prev != i-1:
			t.Fatalf("call %d ran after call %d", i, prev)
		}
	}
	for i, th := range threads {
		if got, err := th.Wait(ctx); got != 100*i+1 || err != nil {
			t.Fatalf("thread %d: %d, %v", i, got, err)
		}
	}
	if err := m.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d calls in %d messages, %d of them batches; the biggest %d bytes", calls.Load(), msgs.Load(), batches.Load(), biggest.Load())
	if batches.Load() == 0 || msgs.Load() >= calls.Load() {
		t.Fatalf("%d calls in a burst went in %d messages, %d batches", calls.Load(), msgs.Load(), batches.Load())
	}
	if biggest.Load() > 64<<10 {
		t.Fatalf("a message of %d bytes, past the max payload", biggest.Load())
	}
}
