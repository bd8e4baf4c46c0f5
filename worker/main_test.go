package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/embedded"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/worker"
)

func TestMain(m *testing.M) {
	proctest.NoRaceExitSleep()
	goleak.VerifyTestMain(m)
}

const (
	owner   = "m-owner"
	master  = "m-test"
	timeout = 10 * time.Second // bounds every wait, so a bug fails instead of hanging
)

var errWorkerTest = bus.RegisterError("worker_test.errWorkerTest", errors.New("worker_test: failure"))

// Functions the worker serves, registered once, at package level.
var (
	_ = bus.Register("worker_test.echo", func(ctx context.Context, s string) (string, error) { return s, nil })
	_ = bus.Register("worker_test.sum", func(ctx context.Context, xs []int) (int, error) {
		n := 0
		for _, x := range xs {
			n += x
		}
		return n, nil
	})
	_ = bus.Register("worker_test.fail", func(ctx context.Context, n int) (int, error) {
		return 0, fmt.Errorf("item %d: %w", n, errWorkerTest)
	})
	_ = bus.Register("worker_test.panic", func(ctx context.Context, msg string) (int, error) {
		panicker(msg)
		return 0, nil
	})
	_ = bus.Register("worker_test.panicError", func(ctx context.Context, n int) (int, error) {
		panic(fmt.Errorf("item %d: %w", n, errWorkerTest))
	})
	_ = bus.Register("worker_test.badResult", func(ctx context.Context, _ struct{}) (any, error) {
		return func() {}, nil
	})
	_ = bus.Register("worker_test.deadline", func(ctx context.Context, _ struct{}) (time.Duration, error) {
		d, ok := ctx.Deadline()
		if !ok {
			return -1, nil
		}
		return time.Until(d), nil
	})
	_ = bus.Register("worker_test.block", block)
	_ = bus.Register("worker_test.record", record)
	_ = bus.Register("worker_test.barrier", barrier)
)

func panicker(msg string) { panic(msg) }

// gate lets a test see that a call to worker_test.block started, release
// it, and learn what its context said when it ended.
type gate struct {
	started  chan struct{}
	release  chan struct{}
	ended    chan error // ctx.Err() when the function returned
	once     sync.Once
	startOne sync.Once
}

var gates sync.Map // key → *gate

func newGate(t *testing.T) (key string, g *gate) {
	key = wire.NewID("gate")
	g = &gate{started: make(chan struct{}), release: make(chan struct{}), ended: make(chan error, 1)}
	gates.Store(key, g)
	// Registered after the worker's cleanup, so it runs first: a failed
	// test never leaves Close waiting on a blocked call.
	t.Cleanup(func() {
		g.open()
		gates.Delete(key)
	})
	return key, g
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-g.started:
	case <-time.After(timeout):
		t.Fatal("the blocking call never started")
	}
}

func (g *gate) hasStarted() bool {
	select {
	case <-g.started:
		return true
	default:
		return false
	}
}

// block waits until its gate opens ("released") or its context ends.
func block(ctx context.Context, key string) (string, error) {
	v, ok := gates.Load(key)
	if !ok {
		return "", fmt.Errorf("no gate %q", key)
	}
	g := v.(*gate)
	g.startOne.Do(func() { close(g.started) })
	select {
	case <-g.release:
		g.ended <- ctx.Err()
		return "released", nil
	case <-ctx.Done():
		g.ended <- ctx.Err()
		return "", ctx.Err()
	}
}

// A log records the order of calls to worker_test.record and how many ran
// at once.
type callLog struct {
	mu        sync.Mutex
	order     []int
	active    int
	maxActive int
}

var logs sync.Map // key → *callLog

func newLog(t *testing.T) (string, *callLog) {
	key := wire.NewID("log")
	l := new(callLog)
	logs.Store(key, l)
	t.Cleanup(func() { logs.Delete(key) })
	return key, l
}

func (l *callLog) snapshot() (order []int, maxActive int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.order...), l.maxActive
}

type recordArg struct {
	Key   string
	I     int
	Sleep time.Duration
}

func record(ctx context.Context, a recordArg) (int, error) {
	v, ok := logs.Load(a.Key)
	if !ok {
		return 0, fmt.Errorf("no log %q", a.Key)
	}
	l := v.(*callLog)
	l.mu.Lock()
	l.active++
	l.maxActive = max(l.maxActive, l.active)
	l.order = append(l.order, a.I)
	l.mu.Unlock()
	time.Sleep(a.Sleep) // busy for a while, overlapping others or not: what the callers measure
	l.mu.Lock()
	l.active--
	l.mu.Unlock()
	return a.I, nil
}

// A barrier returns once N calls to worker_test.barrier with its key are
// running at the same time: calls that ran one after the other would never
// return (their context's deadline ends them).
type barrierState struct {
	mu    sync.Mutex
	n     int
	count int
	all   chan struct{}
}

var barriers sync.Map // key → *barrierState

func newBarrier(t *testing.T, n int) string {
	key := wire.NewID("barrier")
	barriers.Store(key, &barrierState{n: n, all: make(chan struct{})})
	t.Cleanup(func() { barriers.Delete(key) })
	return key
}

func barrier(ctx context.Context, key string) (int, error) {
	v, ok := barriers.Load(key)
	if !ok {
		return 0, fmt.Errorf("no barrier %q", key)
	}
	b := v.(*barrierState)
	b.mu.Lock()
	b.count++
	if b.count == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
		return b.n, nil
	case <-ctx.Done():
		// Gone from the barrier: a call that comes after it does not
		// meet it.
		b.mu.Lock()
		if b.count < b.n {
			b.count--
		}
		b.mu.Unlock()
		return 0, ctx.Err()
	}
}

// harness is a worker on an embedded server, with a connection of its own
// for the test to play the master.
type harness struct {
	srv *embedded.Server
	wc  *nats.Conn // the worker's
	nc  *nats.Conn // the master's
	w   *worker.Worker
	id  string
}

func start(t *testing.T, opts ...worker.Option) *harness {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	wc, err := srv.Connect("worker_test worker")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wc.Close)
	nc, err := srv.Connect("worker_test master")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	id := wire.NewID("wt")
	w, err := worker.Serve(wc, append([]worker.Option{worker.WithID(id), worker.WithOwner(owner)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &harness{srv: srv, wc: wc, nc: nc, w: w, id: id}
}

func (h *harness) subject() string { return wire.CallSubject(h.id) }

func encodeCall(t *testing.T, c wire.Call, arg any) []byte {
	t.Helper()
	data, err := wire.AppendCall(nil, &c, arg)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// request sends data to the worker and decodes its reply.
func (h *harness) request(t *testing.T, data []byte) (raw []byte, re *bus.RemoteError) {
	t.Helper()
	msg, err := h.nc.Request(h.subject(), data, timeout)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	_, raw, re, err = wire.DecodeReply(msg.Data)
	if err != nil {
		t.Fatalf("the worker's reply does not decode: %v", err)
	}
	return raw, re
}

// call sends one call and waits for its reply.
func (h *harness) call(t *testing.T, c wire.Call, arg any) (raw []byte, re *bus.RemoteError) {
	t.Helper()
	if c.Master == "" {
		c.Master = master
	}
	if c.ArgType == "" {
		c.ArgType = fmt.Sprintf("%T", arg)
	}
	return h.request(t, encodeCall(t, c, arg))
}

func decode[T any](t *testing.T, raw []byte, re *bus.RemoteError) T {
	t.Helper()
	var v T
	if re != nil {
		t.Fatalf("remote error: %v", re)
	}
	if err := codec.Unmarshal(raw, &v); err != nil {
		t.Fatalf("result does not decode into %T: %v", v, err)
	}
	return v
}

// callAs sends one call and decodes its result.
func callAs[T any](t *testing.T, h *harness, c wire.Call, arg any) T {
	t.Helper()
	raw, re := h.call(t, c, arg)
	return decode[T](t, raw, re)
}

// requestAs sends data and decodes the result.
func requestAs[T any](t *testing.T, h *harness, data []byte) T {
	t.Helper()
	raw, re := h.request(t, data)
	return decode[T](t, raw, re)
}

// inbox collects the replies to calls published with PublishRequest, as
// a master does, so that many calls can be in flight at once.
type inbox struct {
	h      *harness
	prefix string
	ch     chan *nats.Msg
}

type reply struct {
	id  uint64
	raw []byte
	re  *bus.RemoteError
}

func (h *harness) inbox(t *testing.T) *inbox {
	t.Helper()
	in := &inbox{h: h, prefix: nats.NewInbox() + ".", ch: make(chan *nats.Msg, 4096)}
	sub, err := h.nc.ChanSubscribe(in.prefix+"*", in.ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return in
}

// send publishes a call whose reply comes to the inbox.
func (in *inbox) send(t *testing.T, c wire.Call, arg any) {
	t.Helper()
	if c.Master == "" {
		c.Master = master
	}
	if err := in.h.nc.PublishRequest(in.h.subject(), fmt.Sprint(in.prefix, c.ID), encodeCall(t, c, arg)); err != nil {
		t.Fatal(err)
	}
}

// next waits for the next reply.
func (in *inbox) next(t *testing.T) reply {
	t.Helper()
	select {
	case msg := <-in.ch:
		var r reply
		if _, err := fmt.Sscan(msg.Subject[len(in.prefix):], &r.id); err != nil {
			t.Fatalf("reply subject %q: %v", msg.Subject, err)
		}
		var err error
		_, r.raw, r.re, err = wire.DecodeReply(msg.Data)
		if err != nil {
			t.Fatalf("reply %d does not decode: %v", r.id, err)
		}
		return r
	case <-time.After(timeout):
		t.Fatal("no reply")
	}
	panic("unreachable")
}

// none checks that no reply arrives for a while.
func (in *inbox) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case msg := <-in.ch:
		t.Fatalf("unexpected reply on %s", msg.Subject)
	case <-time.After(d):
	}
}

// control publishes a cancel or close without a reply subject, as a master
// does.
func (h *harness) control(t *testing.T, kind wire.Kind, from string, id uint64) {
	t.Helper()
	if err := h.nc.Publish(h.subject(), encodeCall(t, wire.Call{Kind: kind, Master: from, ID: id}, nil)); err != nil {
		t.Fatal(err)
	}
}

// is is errors.Is for a remote error that may be nil: a nil
// *bus.RemoteError in an error interface is not a nil error.
func is(re *bus.RemoteError, target error) bool {
	return re != nil && errors.Is(re, target)
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("%s: not closed within %s", what, timeout)
	}
}
