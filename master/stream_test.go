//go:build unix

package master_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
	"github.com/processional/processional/server"
)

// collect ranges over a stream, and returns its items and its error.
func collect[T any](seq func(func(T, error) bool)) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

// TestStreamEveryExecutor consumes builtin.Count on every executor: in
// the caller, a goroutine, a slave thread, a spawned worker on its lane
// and one without (by NATS). Items arrive in order, all of them, with a
// window smaller than the stream.
func TestStreamEveryExecutor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := newMaster(t)
	th := master.NewThread()
	defer th.Close()
	want := make([]int, 200)
	for i := range want {
		want[i] = i + 1
	}
	srv, err := server.Start(server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	conn, err := master.Connect(ctx, srv.Addr(), master.WithToken(srv.Token()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	spawn(t, m, master.InPool("streams"))
	pool, err := m.Pool(ctx, "streams")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ex   master.Executor
	}{
		{"caller", master.InCaller},
		{"goroutine", master.InGoroutine},
		{"slave thread", th},
		{"worker, lane", spawn(t, m)},
		{"worker, NATS", spawn(t, m, master.WithoutLane())},
		{"connected server", conn},
		{"pool member", pool},
		{"idempotent", spawn(t, m).Idempotent()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := collect(master.Stream(ctx, tc.ex, builtin.Count, 200, master.WithWindow(7, 1<<20)))
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("count 200: %d items %v…, %v; want 1…200", len(got), got[:min(len(got), 5)], err)
			}
			got, err = collect(master.Stream(ctx, tc.ex, builtin.Count, -1))
			if !errors.Is(err, builtin.ErrNegativeCount) || len(got) != 0 {
				t.Fatalf("count -1: %v, %v; want ErrNegativeCount", got, err)
			}
			n := 0
			for v, err := range master.Stream(ctx, tc.ex, builtin.Count, 1000) {
				if err != nil {
					t.Fatal(err)
				}
				n++
				if v == 3 {
					break
				}
			}
			if n != 3 {
				t.Fatalf("break at 3: %d items", n)
			}
		})
	}
}

// The worker's side of the streams below, in the spawned test binary.
var (
	produced      atomic.Int64 // items the streams below handed to yield
	producerEnded atomic.Int64 // times a stream below saw its context end
	leftBehind    = make(chan func(int) bool, 1)

	// Endless yields 1, 2, … until its consumer wants no more, counting
	// in produced, and in producerEnded when its context ends.
	Endless = bus.RegisterStream("test.endless", func(ctx context.Context, _ struct{}, yield func(int) bool) error {
		for i := 1; ; i++ {
			produced.Add(1)
			if !yield(i) {
				if ctx.Err() != nil {
					producerEnded.Add(1)
				}
				return ctx.Err()
			}
		}
	})
	// Produced reports produced and producerEnded.
	Produced = bus.Register("test.produced", func(context.Context, struct{}) ([2]int64, error) {
		return [2]int64{produced.Load(), producerEnded.Load()}, nil
	})
	// PanicAfter yields 1…n, then panics.
	PanicAfter = bus.RegisterStream("test.panicAfter", func(_ context.Context, n int, yield func(int) bool) error {
		for i := 1; i <= n; i++ {
			yield(i)
		}
		panic("stream broke")
	})
	// Truant yields 1, then returns, leaving a goroutine that yields 2
	// after it returned (ignored).
	Truant = bus.RegisterStream("test.truant", func(_ context.Context, _ struct{}, yield func(int) bool) error {
		yield(1)
		leftBehind <- yield
		return nil
	})
	// YieldLate calls the yield Truant left behind, and reports what it said.
	YieldLate = bus.Register("test.yieldLate", func(context.Context, struct{}) (bool, error) {
		return (<-leftBehind)(2), nil
	})
)

// TestStreamFaults runs a stream on a spawned worker against each fault,
// on the lane and by NATS: a consumer that stops reading holds the
// producer within its window, and its break still cancels it; a break
// at the first item cancels the producer's context at once; a panic
// after some items gives those items, then the error with its stack; a
// yield after the producer returned is ignored; the worker killed
// mid-stream ends the loop with ErrWorkerLost.
func TestStreamFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := newMaster(t)
	for _, opts := range [][]master.SpawnOption{nil, {master.WithoutLane()}} {
		name := "lane"
		if opts != nil {
			name = "NATS"
		}
		t.Run(name, func(t *testing.T) {
			s := spawn(t, m, opts...)
			counts := func() (int64, int64) {
				t.Helper()
				v, err := master.Invoke(ctx, s, Produced, struct{}{})
				if err != nil {
					t.Fatal(err)
				}
				return v[0], v[1]
			}

			// A consumer that stops reading: the producer stops within the
			// window (8 items, and the one waiting for credit).
			const window = 8
			next, stop := iter.Pull2(iter.Seq2[int, error](master.Stream(ctx, s, Endless, struct{}{}, master.WithWindow(window, 1<<20))))
			if v, err, _ := next(); v != 1 || err != nil {
				t.Fatalf("first item: %d, %v", v, err)
			}
			for {
				if p, _ := counts(); p >= window {
					break
				}
			}
			p1, _ := counts()
			time.Sleep(200 * time.Millisecond) // the absence of progress: nothing to wait for
			p2, ended := counts()
			if p2 != p1 || p2 > window+1 {
				t.Fatalf("a consumer that stopped after 1 item: the producer yielded %d, then %d, with a window of %d", p1, p2, window)
			}
			stop() // the loop's break
			for _, e := counts(); e != ended+1; _, e = counts() {
			}

			// A break at the first item cancels the producer's context.
			for v, err := range master.Stream(ctx, s, Endless, struct{}{}) {
				if v != 1 || err != nil {
					t.Fatalf("first item: %d, %v", v, err)
				}
				break
			}
			for _, e := counts(); e != ended+2; _, e = counts() {
			}

			// The caller's deadline ends the loop with its error, and the
			// producer with it.
			dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			var derr error
			for _, err := range master.Stream(dctx, s, Endless, struct{}{}) {
				if err != nil {
					derr = err
				}
			}
			dcancel()
			if !errors.Is(derr, context.DeadlineExceeded) {
				t.Fatalf("a stream past its deadline ended with %v, want DeadlineExceeded", derr)
			}
			for _, e := counts(); e != ended+3; _, e = counts() {
			}

			// A panic after 3 items: the items, then ErrPanic with the stack.
			got, err := collect(master.Stream(ctx, s, PanicAfter, 3))
			var pe *bus.RemoteError
			if !slices.Equal(got, []int{1, 2, 3}) || !errors.Is(err, bus.ErrPanic) || !errors.As(err, &pe) || !strings.Contains(pe.Stack, "stream_test.go") {
				t.Fatalf("panic after 3: %v, %v; want 1 2 3 then ErrPanic with the stack", got, err)
			}

			// A yield after the producer returned: ignored, no panic.
			got, err = collect(master.Stream(ctx, s, Truant, struct{}{}))
			if !slices.Equal(got, []int{1}) || err != nil {
				t.Fatalf("truant: %v, %v; want 1 alone", got, err)
			}
			if said, err := master.Invoke(ctx, s, YieldLate, struct{}{}); said || err != nil {
				t.Fatalf("a yield after the producer returned said %v, %v; want false", said, err)
			}

			// The worker killed mid-stream.
			n := 0
			var lost error
			for _, err := range master.Stream(ctx, s, Endless, struct{}{}) {
				if err != nil {
					lost = err
					break
				}
				if n++; n == 2 {
					if err := syscall.Kill(s.PID(), syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
				}
			}
			if !errors.Is(lost, bus.ErrWorkerLost) {
				t.Fatalf("the worker killed mid-stream: the loop ended with %v, want ErrWorkerLost", lost)
			}
		})
	}
}

// A stream called as a function, and a function as a stream, by name (as
// a master built from other sources would): each fails with its named
// error.
func TestStreamShapeMismatch(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m, master.WithoutLane())
	for _, tc := range []struct {
		kind wire.Kind
		fn   string
		want error
	}{
		{wire.KindCall, "count", bus.ErrIsStream},
		{wire.KindThread, "count", bus.ErrIsStream},
		{wire.KindStream, "sum", bus.ErrNotStream},
	} {
		data, err := wire.AppendCall(nil, &wire.Call{Kind: tc.kind, Master: "m-raw", ID: 1, Function: tc.fn, ArgType: "int"}, 3)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := m.Conn().Request(wire.CallSubject(s.ID()), data, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, _, remote, err := wire.DecodeReply(msg.Data)
		if err != nil || !errors.Is(remote, tc.want) || !strings.Contains(remote.Error(), tc.fn) {
			t.Fatalf("%s of %s: %v, %v; want %v naming it", tc.kind, tc.fn, remote, err, tc.want)
		}
	}
}

var (
	steps = make(chan struct{})

	// Stepper reports its progress 1…n, each once the master asked for
	// the next step (Step), and returns n.
	Stepper = bus.Register("test.stepper", func(ctx context.Context, n int) (int, error) {
		for i := 1; i <= n; i++ {
			bus.Progress(ctx, map[string]int{"step": i, "of": n})
			select {
			case <-steps:
			case <-ctx.Done():
				return i, ctx.Err()
			}
		}
		return n, nil
	})
	// Step lets Stepper go on.
	Step = bus.Register("test.step", func(ctx context.Context, _ struct{}) (struct{}, error) {
		select {
		case steps <- struct{}{}:
			return struct{}{}, nil
		case <-ctx.Done():
			return struct{}{}, ctx.Err()
		}
	})
)

// TestProgress follows a task's progress reports, on a spawned worker
// (on its lane, and by NATS) and in a goroutine of this process: the
// Task gives each report, and the worker's pending verb shows it.
func TestProgress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := newMaster(t)
	for _, tc := range []struct {
		name  string
		ex    func(t *testing.T) master.Executor
		local bool
	}{
		{"worker, lane", func(t *testing.T) master.Executor { return spawn(t, m) }, false},
		{"worker, NATS", func(t *testing.T) master.Executor { return spawn(t, m, master.WithoutLane()) }, false},
		{"goroutine", func(*testing.T) master.Executor { return master.InGoroutine }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := tc.ex(t)
			task := master.Schedule(ctx, ex, Stepper, 3)
			for i := 1; i <= 3; i++ {
				var p map[string]int
				for {
					changed := task.ProgressChanged()
					if ok, err := task.Progress(&p); err != nil {
						t.Fatal(err)
					} else if ok && p["step"] == i {
						break
					}
					select {
					case <-changed:
					case <-ctx.Done():
						t.Fatalf("no progress report of step %d: %v", i, ctx.Err())
					}
				}
				if p["of"] != 3 {
					t.Fatalf("progress %v, want step %d of 3", p, i)
				}
				if !tc.local {
					s := ex.(*master.Slave)
					calls, data := pendingCalls(t, m, s)
					want := fmt.Sprintf(`{"of":3,"step":%d}`, i)
					if len(calls) != 1 || string(calls[0].Progress) != want {
						t.Fatalf("pending: %s; want the stepper with progress %s", data, want)
					}
				}
				if tc.local {
					Step.Call(ctx, struct{}{})
				} else if _, err := master.Thread(ctx, ex, Step, struct{}{}).Wait(ctx); err != nil { // beside the stepper
					t.Fatal(err)
				}
			}
			if n, err := task.Wait(ctx); n != 3 || err != nil {
				t.Fatalf("stepper: %d, %v", n, err)
			}
			select {
			case <-task.ProgressChanged():
			default:
				t.Fatal("ProgressChanged of a finished task is not closed")
			}
		})
	}
}

// BigItems yields n items of 3 MiB, each filled with its index.
var BigItems = bus.RegisterStream("test.bigItems", func(ctx context.Context, n int, yield func([]byte) bool) error {
	for i := range n {
		if !yield(bytes.Repeat([]byte{byte(i + 1)}, 3<<20)) {
			return ctx.Err()
		}
	}
	return nil
})

// Big items take each road a big value takes: one frame on the lane, a
// transient segment by NATS to a process of this host, chunks by NATS to
// another host (another shared-memory domain), with a window of one.
func TestStreamBigItems(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := newMaster(t)
	for _, tc := range []struct {
		name string
		opts []master.SpawnOption
	}{
		{"lane", nil},
		{"NATS, transient segments", []master.SpawnOption{master.WithoutLane()}},
		{"NATS, chunks", []master.SpawnOption{master.WithoutLane(), master.WithEnv("PROCESSIONAL_SHM_DOMAIN=elsewhere")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spawn(t, m, tc.opts...)
			i := 0
			for b, err := range master.Stream(ctx, s, BigItems, 4, master.WithWindow(1, 1)) {
				if err != nil {
					t.Fatal(err)
				}
				i++
				if len(b) != 3<<20 || b[0] != byte(i) || b[len(b)-1] != byte(i) {
					t.Fatalf("item %d: %d bytes of %d…%d", i, len(b), b[0], b[len(b)-1])
				}
			}
			if i != 4 {
				t.Fatalf("%d items, want 4", i)
			}
		})
	}
}

var (
	// HugeProgress reports a progress too big to send, twice within the
	// rate limit (the second from the timer), then returns.
	HugeProgress = bus.Register("test.hugeProgress", func(ctx context.Context, _ struct{}) (int, error) {
		bus.Progress(ctx, make([]byte, 100<<10))
		bus.Progress(ctx, make([]byte, 100<<10))
		time.Sleep(2 * bus.ProgressEvery) // the timer's report fires meanwhile
		return 1, nil
	})
)

// The faults a review found, each on the road it was found on: a byte
// window smaller than half an item's envelope on ints; a stream on a busy
// slave thread whose context ends before it starts; a progress report
// too big to send, from the call and from the timer; a Close inside the
// loop; a yield left behind by a producer run in the caller.
func TestStreamReviewFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := newMaster(t)
	for _, opts := range [][]master.SpawnOption{nil, {master.WithoutLane()}} {
		s := spawn(t, m, opts...)
		got, err := collect(master.Stream(ctx, s, builtin.Count, 5000, master.WithWindow(1000, 1000)))
		if err != nil || len(got) != 5000 {
			t.Fatalf("a window of 1000 bytes: %d items, %v; want 5000", len(got), err)
		}
		if n, err := master.Invoke(ctx, s, HugeProgress, struct{}{}); n != 1 || err != nil {
			t.Fatalf("a progress report too big to send: %d, %v; want the call's result", n, err)
		}
		// Close from inside the loop: the worker ends the stream, which
		// waits for us, and closes.
		var last error
		for v, err := range master.Stream(ctx, s, builtin.Count, 1<<30, master.WithWindow(8, 1<<20)) {
			if err != nil {
				last = err
				break
			}
			if v == 3 {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if !errors.Is(last, bus.ErrClosed) {
			t.Fatalf("a stream whose worker was closed from its loop ended with %v, want ErrClosed", last)
		}
	}

	th := master.NewThread()
	defer th.Close()
	busy := master.Schedule(ctx, th, Sleepy, 300*time.Millisecond)
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := collect(master.Stream(short, th, builtin.Count, 5)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a stream on a busy thread past its deadline: %v, want DeadlineExceeded", err)
	}
	busy.Wait(ctx)

	if got, err := collect(master.Stream(ctx, master.InCaller, Truant, struct{}{})); !slices.Equal(got, []int{1}) || err != nil {
		t.Fatalf("truant in the caller: %v, %v", got, err)
	}
	if said := (<-leftBehind)(2); said {
		t.Fatal("a yield after the producer returned, in the caller, said true")
	}
}

// Sleepy sleeps for d, in this process.
var Sleepy = bus.Register("test.sleepy", func(ctx context.Context, d time.Duration) (struct{}, error) {
	time.Sleep(d)
	return struct{}{}, nil
})
