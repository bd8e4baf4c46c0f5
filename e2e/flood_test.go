//go:build linux

package e2e

// Faults of load: a flood past a worker's pending limit, on a served and
// a spawned worker, and a slow consumer cut off by the server.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
	"github.com/processional/processional/worker"
)

// A flood of calls past a worker's pending limit: the calls past it are
// refused at once with ErrOverloaded, which names the worker, the count
// and the limit; none is dropped, none hangs; once the held calls are
// released they all answer, and later calls succeed.
func TestFaultsFlood(t *testing.T) {
	const limit, sent = 16, 64
	p := startNATSProc(t)
	wnc, err := nats.Connect(p.url, nats.Token(p.token), nats.Name("e2e flood worker"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wnc.Close)
	w, err := worker.Serve(wnc, worker.WithID("w-faults-flood"), worker.WithMaxPending(limit))
	if err != nil {
		t.Fatal(err)
	}
	gate := fmt.Sprintf("flood-%d", time.Now().UnixNano()) // a gate of this run's own: -count=N
	released := false
	release := func() {
		if !released {
			released = true
			close(faultsGate(gate))
		}
	}
	t.Cleanup(func() { release(); w.Close() })
	ctx := testCtx(t)
	s, err := master.Connect(ctx, p.url, master.WithToken(p.token), master.WithServerID(w.ID()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	// Blocking and concurrent calls alike, sent at once from one
	// goroutine: they reach the worker in order, so the first limit are
	// taken and held, the rest refused.
	tasks := make([]*master.Task[string], sent)
	start := time.Now()
	for i := range tasks {
		if i%2 == 0 {
			tasks[i] = master.Schedule(ctx, s, FaultsHold, gate)
		} else {
			tasks[i] = master.Thread(ctx, s, FaultsHold, gate)
		}
	}
	refused := 0
	for i := limit; i < sent; i++ {
		_, err := awaitTask(t, fmt.Sprintf("call %d past the limit", i), tasks[i], 20*time.Second)
		if !errors.Is(err, bus.ErrOverloaded) {
			t.Fatalf("call %d of %d, past the limit of %d: %v, want ErrOverloaded", i, sent, limit, err)
		}
		for _, want := range []string{w.ID(), fmt.Sprintf("holds %d calls", limit), fmt.Sprintf("limit of %d", limit)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("ErrOverloaded %q does not say %q", err, want)
			}
		}
		refused++
	}
	t.Logf("flood: %d calls past the limit of %d refused with ErrOverloaded within %s of the first sent", refused, limit, time.Since(start).Round(time.Millisecond))
	for i := 0; i < limit; i++ {
		if tasks[i].Available() {
			_, err := tasks[i].Wait(ctx)
			t.Fatalf("call %d, within the limit, ended before its release: %v", i, err)
		}
	}
	if got := len(w.Pending()); got != limit {
		t.Fatalf("the worker holds %d calls, want its limit, %d", got, limit)
	}

	release()
	answered := 0
	for i := 0; i < limit; i++ {
		v, err := awaitTask(t, fmt.Sprintf("held call %d", i), tasks[i], 20*time.Second)
		if err != nil || v != gate {
			t.Fatalf("held call %d after its release: %q, %v", i, v, err)
		}
		answered++
	}
	if answered+refused != sent {
		t.Fatalf("%d answered + %d refused != %d sent", answered, refused, sent)
	}
	// Room again: as many calls as the limit, at once, all answered.
	more := make([]*master.Task[int], limit)
	for i := range more {
		more[i] = master.Schedule(ctx, s, Sum, []int{i, 1})
	}
	for i, task := range more {
		if n, err := awaitTask(t, "call after the flood", task, 20*time.Second); n != i+1 || err != nil {
			t.Fatalf("call %d after the flood: %d, %v", i, n, err)
		}
	}
}

// The same limit on a spawned worker process (master.WithMaxPending):
// calls that sleep fill it, the rest are refused at once, and every call
// is accounted for.
func TestFaultsFloodSpawned(t *testing.T) {
	const limit, sent = 4, 12
	ctx := testCtx(t)
	m := newMaster(t)
	s := spawn(t, m, master.WithMaxPending(limit))
	// Calls that would sleep for an hour: the first limit hold the worker
	// until they are cancelled, the rest are refused.
	held, cancel := context.WithCancel(ctx)
	defer cancel()
	tasks := make([]*master.Task[time.Duration], sent)
	for i := range tasks {
		tasks[i] = master.Thread(held, s, Sleep, time.Hour)
	}
	refused := 0
	for i := limit; i < sent; i++ {
		_, err := awaitTask(t, fmt.Sprintf("call %d past the limit", i), tasks[i], 20*time.Second)
		if !errors.Is(err, bus.ErrOverloaded) || !strings.Contains(err.Error(), fmt.Sprintf("limit of %d", limit)) {
			t.Fatalf("call %d, past the limit of %d: %v, want ErrOverloaded", i, limit, err)
		}
		refused++
	}
	cancelled := 0
	for i := 0; i < limit; i++ {
		if tasks[i].Available() {
			_, err := tasks[i].Wait(ctx)
			t.Fatalf("call %d, within the limit, ended before it was cancelled: %v", i, err)
		}
	}
	cancel()
	for i := 0; i < limit; i++ {
		if _, err := awaitTask(t, fmt.Sprintf("held call %d", i), tasks[i], 20*time.Second); !errors.Is(err, context.Canceled) {
			t.Fatalf("held call %d, cancelled: %v", i, err)
		}
		cancelled++
	}
	if cancelled+refused != sent {
		t.Fatalf("%d cancelled + %d refused != %d sent", cancelled, refused, sent)
	}
	// The cancelled calls give their places back as they end on the
	// worker, a moment after their cancel reaches it.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, err := master.Invoke(ctx, s, Sum, []int{2, 3})
		if errors.Is(err, bus.ErrOverloaded) && time.Now().Before(deadline) {
			continue
		}
		if n != 5 || err != nil {
			t.Fatalf("a call after the flood: %d, %v", n, err)
		}
		break
	}
	if _, err := m.Spawn(ctx, master.WithMaxPending(0)); !errors.Is(err, master.ErrConfig) {
		t.Fatalf("WithMaxPending(0): %v, want %v", err, master.ErrConfig)
	}
}

// A worker that stops reading (SIGSTOP) while calls pour in: the server
// cuts it off as a slow consumer. Once it runs again it reconnects and
// says so on its log, and every call in flight ends, with its result or
// ErrWorkerLost; none hangs, and new calls succeed.
func TestFaultsSlowConsumer(t *testing.T) {
	// A server in this process, with a small outbound buffer per client.
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, Authorization: "faults-slow", NoLog: true, NoSigs: true, MaxPending: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("in-process NATS server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	p := &natsProc{t: t, url: srv.ClientURL(), token: "faults-slow"}
	m := faultsMaster(t, p, 30*time.Second) // a lease past the time the worker is stopped
	var out lockedBuffer
	s := spawnSelf(t, m, "w-faults-slow", &out, master.WithoutLane()) // a slow consumer of the NATS server
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the worker's output:\n%s", out.String())
		}
	})
	ctx := testCtx(t)
	if _, err := master.Invoke(ctx, s, Sum, []int{1}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(s.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	cont := func() {
		if stopped {
			stopped = false
			syscall.Kill(s.PID(), syscall.SIGCONT)
		}
	}
	t.Cleanup(cont) // before its Terminate, which runs first: harmless either way

	payload := bytes.Repeat([]byte("x"), 64<<10)
	var tasks []*master.Task[[]byte]
	start := time.Now()
	for srv.NumSlowConsumers() == 0 {
		if len(tasks) >= 4096 { // 256 MiB: the server should have given up long before
			cont()
			t.Fatalf("the server did not cut off the stopped worker after %d calls", len(tasks))
		}
		for range 16 {
			tasks = append(tasks, master.Thread(ctx, s, builtin.Echo, payload))
		}
		m.Conn().Flush()
	}
	t.Logf("slow consumer: the server cut off the stopped worker after %d calls of 64 KiB (%s)", len(tasks), time.Since(start).Round(time.Millisecond))
	cont()
	resumed := time.Now()
	ok, lost := 0, 0
	for i, task := range tasks {
		v, err := awaitTask(t, fmt.Sprintf("call %d in flight", i), task, 30*time.Second)
		switch {
		case err == nil && bytes.Equal(v, payload):
			ok++
		case errors.Is(err, bus.ErrWorkerLost):
			lost++
		default:
			t.Fatalf("call %d in flight to a slow consumer: %d bytes, %v; want its result or ErrWorkerLost", i, len(v), err)
		}
	}
	t.Logf("slow consumer: of %d calls in flight, %d answered and %d failed with ErrWorkerLost, all within %s of the worker resuming", len(tasks), ok, lost, time.Since(resumed).Round(time.Millisecond))
	if lost == 0 {
		t.Errorf("no call failed with ErrWorkerLost: the worker's reconnect went unseen")
	}
	if n, err := master.Invoke(ctx, s, Sum, []int{4, 5}); n != 9 || err != nil {
		t.Fatalf("after the slow consumer: %d, %v", n, err)
	}
	if !strings.Contains(out.String(), "lost its NATS connection") {
		t.Errorf("the worker did not log its disconnection; its output:\n%s", out.String())
	}
}
