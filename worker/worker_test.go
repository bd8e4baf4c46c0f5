package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/embedded"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/registry"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/worker"
)

func TestServeOptions(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("worker_test options")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	for _, tc := range []struct {
		name string
		nc   *nats.Conn
		opts []worker.Option
		want string
	}{
		{"empty id", nc, []worker.Option{worker.WithID("")}, `worker id ""`},
		{"id with a dot", nc, []worker.Option{worker.WithID("w.1")}, `worker id "w.1"`},
		{"id with a wildcard", nc, []worker.Option{worker.WithID("w*")}, `worker id "w*"`},
		{"id too long", nc, []worker.Option{worker.WithID(strings.Repeat("w", 65))}, "worker id"},
		{"empty owner", nc, []worker.Option{worker.WithOwner("")}, `owner id ""`},
		{"owner with a space", nc, []worker.Option{worker.WithID("w-1"), worker.WithOwner("m 1")}, `owner id "m 1": want 1 to 64 letters, digits, '-' or '_'`},
		{"pool name with a dot", nc, []worker.Option{worker.WithPool("p.1")}, `pool name "p.1": want 1 to 64 letters, digits, '-' or '_'`},
		{"nil connection", nil, nil, "nil connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := worker.Serve(tc.nc, tc.opts...)
			if !errors.Is(err, worker.ErrConfig) || w != nil {
				t.Fatalf("Serve = %v, %v, want ErrConfig", w, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}

	t.Run("ids", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			opts   []worker.Option
			wantID func(string) bool
		}{
			{"default", nil, func(id string) bool { return strings.HasPrefix(id, "w-") && wire.ValidID(id) }},
			{"given", []worker.Option{worker.WithID("w_given-1")}, func(id string) bool { return id == "w_given-1" }},
			{"last wins", []worker.Option{worker.WithID("w-a"), worker.WithID("w-b")}, func(id string) bool { return id == "w-b" }},
		} {
			w, err := worker.Serve(nc, tc.opts...)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !tc.wantID(w.ID()) {
				t.Errorf("%s: ID() = %q", tc.name, w.ID())
			}
			if err := w.Close(); err != nil {
				t.Errorf("%s: Close: %v", tc.name, err)
			}
		}
	})
}

func TestCallResults(t *testing.T) {
	h := start(t)
	for _, kind := range []wire.Kind{wire.KindCall, wire.KindThread} {
		t.Run(kind.String(), func(t *testing.T) {
			for _, tc := range []struct {
				name     string
				function string
				arg      any
				want     any
			}{
				{"echo", "worker_test.echo", "héllo", "héllo"},
				{"empty string", "worker_test.echo", "", ""},
				{"long string", "worker_test.echo", strings.Repeat("x", 100000), strings.Repeat("x", 100000)},
				{"sum", "worker_test.sum", []int{1, 2, 3, 4}, 10},
				{"sum of nil", "worker_test.sum", []int(nil), 0},
				{"no deadline", "worker_test.deadline", struct{}{}, time.Duration(-1)},
			} {
				t.Run(tc.name, func(t *testing.T) {
					raw, re := h.call(t, wire.Call{Kind: kind, ID: 1, Function: tc.function}, tc.arg)
					if re != nil {
						t.Fatalf("remote error: %v", re)
					}
					want, err := codec.Marshal(tc.want)
					if err != nil {
						t.Fatal(err)
					}
					if string(raw) != string(want) {
						t.Fatalf("result % x, want % x", raw[:min(len(raw), 16)], want[:min(len(want), 16)])
					}
				})
			}
		})
	}
}

func TestCallErrors(t *testing.T) {
	h := start(t)
	for _, kind := range []wire.Kind{wire.KindCall, wire.KindThread} {
		t.Run(kind.String(), func(t *testing.T) {
			for _, tc := range []struct {
				name      string
				function  string
				arg       any
				argType   string
				is        []error
				isNot     []error
				subs      []string // in the message
				typ       string
				wantStack bool
			}{
				{"unknown function", "worker_test.nope", 1, "int",
					[]error{bus.ErrUnknownFunction}, []error{bus.ErrArgumentType},
					[]string{`"worker_test.nope"`, "unknown function", "on worker " + h.id}, "", false},
				{"wrong argument type", "worker_test.echo", 42, "int",
					[]error{bus.ErrArgumentType}, []error{bus.ErrUnknownFunction, bus.ErrBadPayload},
					[]string{`"worker_test.echo"`, "expects string", "got int"}, "", false},
				{"struct for a slice", "worker_test.sum", struct{ A int }{1}, "struct { A int }",
					[]error{bus.ErrArgumentType}, nil,
					[]string{`"worker_test.sum"`, "expects []int", "got struct { A int }"}, "", false},
				{"argument cut short", "worker_test.echo", msgpack.RawMessage{0xa5, 'a', 'b'}, "string",
					[]error{bus.ErrArgumentType}, nil, []string{"expects string"}, "", false},
				// 5 bytes that announce 2^32-1 elements: refused, not
				// allocated (the worker would die of it).
				{"argument announces 4 billion elements", "worker_test.sum", msgpack.RawMessage{0xdd, 0xff, 0xff, 0xff, 0xff}, "[]int",
					[]error{bus.ErrArgumentType}, nil, []string{"expects []int", "announced"}, "", false},
				{"function error", "worker_test.fail", 7, "int",
					[]error{errWorkerTest}, []error{bus.ErrPanic, bus.ErrArgumentType},
					[]string{"item 7: worker_test: failure"}, "*fmt.wrapError", false},
				{"panic", "worker_test.panic", "boom", "string",
					[]error{bus.ErrPanic}, []error{errWorkerTest},
					[]string{"panic: boom"}, "*bus.PanicError", true},
				{"panic with an error", "worker_test.panicError", 3, "int",
					[]error{bus.ErrPanic, errWorkerTest}, nil,
					[]string{"panic: item 3: worker_test: failure"}, "*bus.PanicError", true},
				{"result that cannot travel", "worker_test.badResult", struct{}{}, "struct {}",
					[]error{bus.ErrEncode}, []error{bus.ErrPanic},
					[]string{"result of worker_test.badResult", "func()", "return a type that can travel"}, "", false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					raw, re := h.call(t, wire.Call{Kind: kind, ID: 2, Function: tc.function, ArgType: tc.argType}, tc.arg)
					if re == nil {
						t.Fatalf("result % x, want a remote error", raw)
					}
					if re.Worker != h.id || re.Function != tc.function {
						t.Errorf("worker, function = %q, %q, want %q, %q", re.Worker, re.Function, h.id, tc.function)
					}
					for _, target := range tc.is {
						if !is(re, target) {
							t.Errorf("errors.Is(%v, %v) = false (sentinels %q)", re, target, re.Sentinels)
						}
					}
					for _, target := range tc.isNot {
						if is(re, target) {
							t.Errorf("errors.Is(%v, %v) = true", re, target)
						}
					}
					for _, s := range tc.subs {
						if !strings.Contains(re.Message, s) {
							t.Errorf("message %q does not contain %q", re.Message, s)
						}
					}
					if tc.typ != "" && re.Type != tc.typ {
						t.Errorf("type %q, want %q", re.Type, tc.typ)
					}
					if tc.wantStack {
						for _, s := range []string{"goroutine", "worker_test.panicker"} {
							if tc.function == "worker_test.panicError" && s == "worker_test.panicker" {
								continue
							}
							if !strings.Contains(re.Stack, s) {
								t.Errorf("stack does not contain %q:\n%s", s, re.Stack)
							}
						}
					} else if re.Stack != "" {
						t.Errorf("stack for an error that is no panic:\n%s", re.Stack)
					}
				})
			}
		})
	}
	// The worker survived all that.
	if got := callAs[string](t, h, wire.Call{ID: 3, Function: "worker_test.echo"}, "still here"); got != "still here" {
		t.Fatalf("echo after errors = %q", got)
	}
}

func TestBadEnvelopes(t *testing.T) {
	h := start(t)
	good := encodeCall(t, wire.Call{Kind: wire.KindCall, Master: master, ID: 1, Function: "worker_test.echo", ArgType: "string"}, "x")
	if good[1] != wire.ProtocolVersion {
		t.Fatalf("byte 1 of % x is not the version", good[:4])
	}
	withVersion := func(v ...byte) []byte {
		return append(append([]byte{good[0]}, v...), good[2:]...)
	}
	reply, err := wire.AppendReply(nil, 0, "a reply")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
		subs []string
	}{
		{"empty", nil, bus.ErrBadPayload, []string{"empty message"}},
		{"text", []byte("hello"), bus.ErrBadPayload, []string{"not a processional envelope"}},
		{"JSON", []byte(`{"function": "worker_test.echo"}`), bus.ErrBadPayload, []string{"not a processional envelope"}},
		{"a reply", reply, bus.ErrBadPayload, []string{"want 9"}},
		{"cut short", good[:5], bus.ErrBadPayload, []string{"truncated"}},
		{"no argument", good[:len(good)-2], bus.ErrBadPayload, []string{"no argument"}},
		{"unknown kind", append([]byte{good[0], good[1], 9}, good[3:]...), bus.ErrBadPayload, []string{"unknown kind 9"}},
		{"newer protocol", withVersion(wire.ProtocolVersion + 1), bus.ErrProtocolVersion,
			[]string{fmt.Sprintf("speaks protocol %d", wire.ProtocolVersion+1), fmt.Sprintf("this binary speaks %d", wire.ProtocolVersion)}},
		{"older protocol", withVersion(0), bus.ErrProtocolVersion, []string{"speaks protocol 0"}},
		{"far protocol", withVersion(0xcf, 1, 0, 0, 0, 0, 0, 0, 0), bus.ErrProtocolVersion, []string{"speaks protocol 72057594037927936"}},
		{"other protocol, other layout", []byte{0x92, 0x05, 0xc0}, bus.ErrProtocolVersion, []string{"speaks protocol 5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, re := h.request(t, tc.data)
			if re == nil || !is(re, tc.want) {
				t.Fatalf("reply %v, want a remote error wrapping %v", re, tc.want)
			}
			other := bus.ErrProtocolVersion
			if tc.want == other {
				other = bus.ErrBadPayload
			}
			if is(re, other) {
				t.Errorf("reply %v also wraps %v", re, other)
			}
			if re.Worker != h.id {
				t.Errorf("worker %q, want %q", re.Worker, h.id)
			}
			for _, s := range tc.subs {
				if !strings.Contains(re.Message, s) {
					t.Errorf("message %q does not contain %q", re.Message, s)
				}
			}
		})
	}
	// A bad message fails itself, not the worker.
	if got := requestAs[string](t, h, good); got != "x" {
		t.Fatalf("echo after bad envelopes = %q", got)
	}
}

// TestOrder sends many blocking calls from one master without waiting:
// they run one at a time, in the order sent.
func TestOrder(t *testing.T) {
	h := start(t)
	key, log := newLog(t)
	in := h.inbox(t)
	const n = 50
	for i := range n {
		c := wire.Call{Kind: wire.KindCall, ID: uint64(i), Function: "worker_test.record", ArgType: "worker_test.recordArg"}
		if i == n/2 {
			// A call that wants no reply keeps its place all the same.
			if err := h.nc.Publish(h.subject(), encodeCall(t, wire.Call{Kind: wire.KindCall, Master: master, ID: 1000, Function: "worker_test.record"},
				recordArg{Key: key, I: -1})); err != nil {
				t.Fatal(err)
			}
		}
		in.send(t, c, recordArg{Key: key, I: i, Sleep: time.Millisecond})
	}
	for i := range n {
		r := in.next(t)
		if r.id != uint64(i) {
			t.Fatalf("reply %d arrived as number %d: blocking calls replied out of order", r.id, i)
		}
		if got := decode[int](t, r.raw, r.re); got != i {
			t.Fatalf("reply %d = %d", r.id, got)
		}
	}
	order, maxActive := log.snapshot()
	want := make([]int, 0, n+1)
	for i := range n {
		if i == n/2 {
			want = append(want, -1)
		}
		want = append(want, i)
	}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("calls ran in the order %v, want %v", order, want)
	}
	if maxActive != 1 {
		t.Errorf("%d blocking calls from one master ran at once, want 1", maxActive)
	}
}

// TestConcurrent checks what runs at the same time: each case's calls
// meet at a barrier that opens only when all of them are running, and
// fail at their deadline otherwise.
func TestConcurrent(t *testing.T) {
	type send struct {
		kind   wire.Kind
		master string
	}
	for _, tc := range []struct {
		name  string
		calls []send
	}{
		{"threads", []send{{wire.KindThread, master}, {wire.KindThread, master}, {wire.KindThread, master}, {wire.KindThread, master}, {wire.KindThread, master}}},
		{"threads beside a blocking call", []send{{wire.KindCall, master}, {wire.KindThread, master}, {wire.KindThread, master}, {wire.KindThread, master}}},
		{"blocking calls of several masters", []send{{wire.KindCall, "m-a"}, {wire.KindCall, "m-b"}, {wire.KindCall, "m-c"}}},
		{"threads of several masters", []send{{wire.KindThread, "m-a"}, {wire.KindThread, "m-b"}, {wire.KindCall, "m-a"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t)
			in := h.inbox(t)
			key := newBarrier(t, len(tc.calls))
			for i, s := range tc.calls {
				in.send(t, wire.Call{Kind: s.kind, Master: s.master, ID: uint64(i), Function: "worker_test.barrier", Timeout: 5 * time.Second}, key)
			}
			for range tc.calls {
				r := in.next(t)
				if r.re != nil {
					t.Fatalf("call %d: %v: the calls did not run at the same time", r.id, r.re)
				}
				if got := decode[int](t, r.raw, r.re); got != len(tc.calls) {
					t.Fatalf("call %d = %d", r.id, got)
				}
			}
		})
	}
	// And the contrary: two blocking calls of one master never meet.
	t.Run("blocking calls of one master", func(t *testing.T) {
		h := start(t)
		in := h.inbox(t)
		key := newBarrier(t, 2)
		for i := range 2 {
			in.send(t, wire.Call{Kind: wire.KindCall, ID: uint64(i), Function: "worker_test.barrier", Timeout: 200 * time.Millisecond}, key)
		}
		for range 2 {
			if r := in.next(t); !is(r.re, context.DeadlineExceeded) {
				t.Fatalf("call %d: %v, %v, want DeadlineExceeded: they ran at the same time", r.id, r.raw, r.re)
			}
		}
	})
}

// TestManyCalls mixes kinds and masters under load.
func TestManyCalls(t *testing.T) {
	h := start(t)
	in := h.inbox(t)
	const n = 400
	masters := []string{"m-1", "m-2", "m-3", "m-4"}
	for i := range n {
		kind := wire.KindCall
		if i%3 == 0 {
			kind = wire.KindThread
		}
		in.send(t, wire.Call{Kind: kind, Master: masters[i%len(masters)], ID: uint64(i), Function: "worker_test.sum"}, []int{i, i})
	}
	seen := make(map[uint64]bool)
	for range n {
		r := in.next(t)
		if got := decode[int](t, r.raw, r.re); got != 2*int(r.id) {
			t.Fatalf("call %d = %d", r.id, got)
		}
		if seen[r.id] {
			t.Fatalf("two replies to call %d", r.id)
		}
		seen[r.id] = true
	}
	in.none(t, 50*time.Millisecond)
}

func TestCancel(t *testing.T) {
	for _, kind := range []wire.Kind{wire.KindCall, wire.KindThread} {
		t.Run("running "+kind.String(), func(t *testing.T) {
			h := start(t)
			in := h.inbox(t)
			key, g := newGate(t)
			in.send(t, wire.Call{Kind: kind, ID: 7, Function: "worker_test.block"}, key)
			g.waitStarted(t)
			// A cancel of another master's call of the same id, or of an
			// id that does not run, changes nothing.
			h.control(t, wire.KindCancel, "m-other", 7)
			h.control(t, wire.KindCancel, master, 8)
			in.none(t, 50*time.Millisecond)
			h.control(t, wire.KindCancel, master, 7)
			r := in.next(t)
			if r.id != 7 || !is(r.re, context.Canceled) {
				t.Fatalf("reply %d: %v, want context.Canceled", r.id, r.re)
			}
			select {
			case err := <-g.ended:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("the function's context ended with %v, want context.Canceled", err)
				}
			case <-time.After(timeout):
				t.Fatal("the function did not return")
			}
		})
	}

	t.Run("queued call", func(t *testing.T) {
		h := start(t)
		in := h.inbox(t)
		key1, g1 := newGate(t)
		key2, g2 := newGate(t)
		in.send(t, wire.Call{Kind: wire.KindCall, ID: 1, Function: "worker_test.block"}, key1)
		in.send(t, wire.Call{Kind: wire.KindCall, ID: 2, Function: "worker_test.block"}, key2)
		g1.waitStarted(t)
		h.control(t, wire.KindCancel, master, 2)
		if err := h.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		// Let the cancel reach the worker before the first call ends.
		in.none(t, 50*time.Millisecond)
		g1.open()
		if r := in.next(t); r.id != 1 || decode[string](t, r.raw, r.re) != "released" {
			t.Fatalf("reply %d: %v", r.id, r.re)
		}
		if r := in.next(t); r.id != 2 || !is(r.re, context.Canceled) {
			t.Fatalf("reply %d: %v, want context.Canceled", r.id, r.re)
		}
		if g2.hasStarted() {
			t.Error("the cancelled queued call ran")
		}
	})

	t.Run("cancel after the reply", func(t *testing.T) {
		h := start(t)
		h.call(t, wire.Call{ID: 5, Function: "worker_test.echo"}, "x")
		h.control(t, wire.KindCancel, master, 5)
		if got := callAs[string](t, h, wire.Call{ID: 5, Function: "worker_test.echo"}, "again"); got != "again" {
			t.Fatalf("echo after a late cancel = %q", got)
		}
	})
}

func TestTimeout(t *testing.T) {
	h := start(t)
	for _, kind := range []wire.Kind{wire.KindCall, wire.KindThread} {
		for _, tc := range []struct {
			timeout time.Duration
			min     time.Duration // the deadline is at least this far when the function runs
		}{
			{time.Second, 500 * time.Millisecond},
			{time.Hour, time.Hour - 5*time.Second},
			{365 * 24 * time.Hour, 365*24*time.Hour - 5*time.Second},
		} {
			t.Run(fmt.Sprint(kind, "/", tc.timeout), func(t *testing.T) {
				got := callAs[time.Duration](t, h, wire.Call{Kind: kind, ID: 1, Function: "worker_test.deadline", Timeout: tc.timeout}, struct{}{})
				if got > tc.timeout || got < tc.min {
					t.Fatalf("time left before the deadline = %v, want in [%v, %v]", got, tc.min, tc.timeout)
				}
			})
		}
		t.Run(fmt.Sprint(kind, "/expires"), func(t *testing.T) {
			key, g := newGate(t)
			start := time.Now()
			_, re := h.call(t, wire.Call{Kind: kind, ID: 2, Function: "worker_test.block", Timeout: 50 * time.Millisecond}, key)
			if !is(re, context.DeadlineExceeded) {
				t.Fatalf("reply %v, want context.DeadlineExceeded", re)
			}
			if d := time.Since(start); d < 50*time.Millisecond {
				t.Errorf("the call ended after %v, before its deadline", d)
			}
			if err := <-g.ended; !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the function's context ended with %v", err)
			}
		})
	}
}

func TestCloseFromOwner(t *testing.T) {
	for _, tc := range []struct {
		name      string
		from      string
		withReply bool
		stops     bool
	}{
		{"owner, with a reply", owner, true, true},
		{"owner, as a master sends it", owner, false, true},
		{"another master", "m-other", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t)
			key, log := newLog(t)
			in := h.inbox(t)
			const n = 5
			for i := range n {
				in.send(t, wire.Call{Kind: wire.KindCall, Master: tc.from, ID: uint64(i), Function: "worker_test.record"},
					recordArg{Key: key, I: i, Sleep: 10 * time.Millisecond})
			}
			if closed(h.w.Stopping()) {
				t.Fatal("Stopping closed before any close")
			}
			if tc.withReply {
				in.send(t, wire.Call{Kind: wire.KindClose, Master: tc.from, ID: 99}, nil)
			} else {
				h.control(t, wire.KindClose, tc.from, 0)
			}
			for i := range n {
				r := in.next(t)
				if r.id != uint64(i) || decode[int](t, r.raw, r.re) != i {
					t.Fatalf("reply %d (%v) arrived as number %d", r.id, r.re, i)
				}
				if closed(h.w.Stopping()) {
					// The close is behind the calls: it cannot be done yet
					// unless the last reply is out.
					if order, _ := log.snapshot(); len(order) < n {
						t.Fatalf("Stopping closed after %d of %d queued calls", len(order), n)
					}
				}
			}
			if tc.withReply {
				r := in.next(t)
				if r.id != 99 || r.re != nil {
					t.Fatalf("close reply %d: %v", r.id, r.re)
				}
				var v map[string]any
				if err := codec.Unmarshal(r.raw, &v); err != nil || len(v) != 0 {
					t.Fatalf("close reply = %v, %v, want an empty struct", v, err)
				}
			}
			if tc.stops {
				waitClosed(t, h.w.Stopping(), "Stopping")
			} else {
				in.none(t, 50*time.Millisecond)
				if closed(h.w.Stopping()) {
					t.Fatal("Stopping closed on the close of a master that is not the owner")
				}
				// The worker still serves.
				if got := callAs[string](t, h, wire.Call{ID: 100, Function: "worker_test.echo"}, "on"); got != "on" {
					t.Fatalf("echo = %q", got)
				}
			}
			if order, _ := log.snapshot(); len(order) != n {
				t.Errorf("%d calls ran, want %d", len(order), n)
			}
		})
	}
}

func TestCloseWaitsForRunningCalls(t *testing.T) {
	for _, kind := range []wire.Kind{wire.KindCall, wire.KindThread} {
		t.Run(kind.String(), func(t *testing.T) {
			h := start(t)
			in := h.inbox(t)
			key, g := newGate(t)
			logKey, log := newLog(t)
			in.send(t, wire.Call{Kind: kind, ID: 1, Function: "worker_test.block"}, key)
			g.waitStarted(t)
			// A blocking call queued when Close begins still runs.
			in.send(t, wire.Call{Kind: wire.KindCall, ID: 2, Function: "worker_test.record"}, recordArg{Key: logKey, I: 2})
			if err := h.nc.Flush(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond) // let the worker queue it

			closeDone := make(chan error, 1)
			go func() { closeDone <- h.w.Close() }()

			// Calls that arrive while the worker closes fail with ErrClosed.
			deadline := time.Now().Add(timeout)
			for i := uint64(100); ; i++ {
				raw, re := h.call(t, wire.Call{Kind: wire.KindThread, Master: "m-probe", ID: i, Function: "worker_test.echo"}, "probe")
				if is(re, bus.ErrClosed) {
					if !strings.Contains(re.Message, h.id) || re.Function != "worker_test.echo" {
						t.Errorf("closed error %+v does not name the worker and function", re)
					}
					break
				}
				if re != nil || time.Now().After(deadline) {
					t.Fatalf("probe while closing = % x, %v", raw, re)
				}
				time.Sleep(time.Millisecond)
			}
			if _, re := h.call(t, wire.Call{Kind: wire.KindCall, ID: 3, Function: "worker_test.echo"}, "late"); !is(re, bus.ErrClosed) {
				t.Fatalf("blocking call while closing: %v, want ErrClosed", re)
			}

			select {
			case err := <-closeDone:
				t.Fatalf("Close returned %v while a call was running", err)
			case <-time.After(50 * time.Millisecond):
			}
			if closed(h.w.Stopping()) {
				t.Fatal("Stopping closed while a call was running")
			}
			g.open()
			// A blocking call waited behind the blocking one; beside a
			// thread, it may have replied already.
			replies := map[uint64]reply{}
			for i := range 2 {
				r := in.next(t)
				replies[r.id] = r
				if kind == wire.KindCall && r.id != uint64(i+1) {
					t.Fatalf("reply %d arrived as number %d", r.id, i+1)
				}
			}
			if r := replies[1]; decode[string](t, r.raw, r.re) != "released" {
				t.Fatalf("running call: reply %v", r.re)
			}
			if err := <-g.ended; err != nil {
				t.Errorf("Close cancelled the running call's context: %v", err)
			}
			if r := replies[2]; decode[int](t, r.raw, r.re) != 2 {
				t.Fatalf("queued call: reply %v", r.re)
			}
			select {
			case err := <-closeDone:
				if err != nil {
					t.Fatalf("Close = %v", err)
				}
			case <-time.After(timeout):
				t.Fatal("Close did not return once the calls were done")
			}
			waitClosed(t, h.w.Stopping(), "Stopping after Close")
			if order, _ := log.snapshot(); len(order) != 1 {
				t.Errorf("the queued call ran %d times", len(order))
			}

			// Once closed, the worker no longer answers: a call fails
			// with ErrClosed while the subscription drains, then finds no
			// responder.
			deadline = time.Now().Add(timeout)
			for {
				msg, err := h.nc.Request(h.subject(), encodeCall(t, wire.Call{Master: master, ID: 4, Function: "worker_test.echo"}, "after"), timeout)
				if errors.Is(err, nats.ErrNoResponders) {
					break
				}
				if err != nil {
					t.Fatalf("call after Close: %v", err)
				}
				if _, _, re, _ := wire.DecodeReply(msg.Data); !is(re, bus.ErrClosed) {
					t.Fatalf("call after Close: %v, want ErrClosed or no responders", re)
				}
				if time.Now().After(deadline) {
					t.Fatal("the closed worker still answers")
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

func TestCloseIdempotent(t *testing.T) {
	h := start(t)
	h.call(t, wire.Call{ID: 1, Function: "worker_test.echo"}, "x")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- h.w.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Close = %v", err)
		}
	}
	for i := range 3 {
		if err := h.w.Close(); err != nil {
			t.Errorf("Close #%d = %v", i, err)
		}
		if err := h.w.Abort(); err != nil {
			t.Errorf("Abort after Close = %v", err)
		}
	}
	waitClosed(t, h.w.Stopping(), "Stopping")
}

func TestCloseOnClosedConnection(t *testing.T) {
	h := start(t)
	h.call(t, wire.Call{ID: 1, Function: "worker_test.echo"}, "x")
	h.wc.Close()
	done := make(chan error, 1)
	go func() { done <- h.w.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close on a closed connection = %v, want nil", err)
		}
	case <-time.After(timeout):
		t.Fatal("Close hangs on a closed connection")
	}
}

func TestAbortCancelsRunningCalls(t *testing.T) {
	for _, kind := range []wire.Kind{wire.KindCall, wire.KindThread} {
		t.Run(kind.String(), func(t *testing.T) {
			h := start(t)
			in := h.inbox(t)
			key, g := newGate(t)
			in.send(t, wire.Call{Kind: kind, ID: 1, Function: "worker_test.block"}, key)
			g.waitStarted(t)
			done := make(chan error, 1)
			go func() { done <- h.w.Abort() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Abort = %v", err)
				}
			case <-time.After(timeout):
				t.Fatal("Abort did not return: it did not cancel the running call")
			}
			if err := <-g.ended; !errors.Is(err, context.Canceled) {
				t.Fatalf("the function's context ended with %v, want context.Canceled", err)
			}
			if r := in.next(t); !is(r.re, context.Canceled) {
				t.Fatalf("reply %v, want context.Canceled", r.re)
			}
			waitClosed(t, h.w.Stopping(), "Stopping after Abort")
		})
	}
}

func TestMicroService(t *testing.T) {
	h := start(t)
	h.call(t, wire.Call{ID: 1, Function: "worker_test.echo"}, "count me")

	subject, err := micro.ControlSubject(micro.InfoVerb, worker.ServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	if subject != "$SRV.INFO.processional" {
		t.Fatalf("info subject %q", subject)
	}
	msg, err := h.nc.Request(subject, nil, timeout)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"name", info.Name, worker.ServiceName},
		{"version", info.Version, worker.ServiceVersion},
		{"worker", info.Metadata["worker"], h.id},
		{"protocol", info.Metadata["protocol"], fmt.Sprint(wire.Version())},
		{"pid", info.Metadata["pid"], fmt.Sprint(os.Getpid())},
	} {
		if c.got != c.want {
			t.Errorf("info %s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !strings.Contains(info.Description, h.id) {
		t.Errorf("description %q does not name the worker", info.Description)
	}
	var names []string
	for _, ep := range info.Endpoints {
		names = append(names, ep.Name)
	}
	if got := strings.Join(names[:min(8, len(names))], ","); got != "call,heartbeat,hello,leases,stop,refs,pending,stack" {
		t.Fatalf("endpoints %s, want call,heartbeat,hello,leases,stop,refs,pending,stack first", got)
	}
	// Then one JSON endpoint per registered function.
	found := false
	for _, ep := range info.Endpoints[8:] {
		if ep.Metadata["function"] == "worker_test.sum" {
			found = true
			if ep.Subject != wire.JSONSubject(h.id, "worker_test.sum") || ep.Metadata["argument"] != "[]int" || ep.Metadata["result"] != "int" || ep.Metadata["format"] != "json" {
				t.Errorf("the JSON endpoint of worker_test.sum: %+v", ep)
			}
		}
	}
	if !found || len(info.Endpoints)-8 != len(registry.Functions()) {
		t.Fatalf("%d JSON endpoints for %d functions; worker_test.sum among them: %v", len(info.Endpoints)-8, len(registry.Functions()), found)
	}
	ep := info.Endpoints[0]
	if ep.Name != "call" || ep.Subject != wire.CallSubject(h.id) || ep.Metadata["format"] != "msgpack" {
		t.Errorf("endpoint %+v, want call on %s", ep, wire.CallSubject(h.id))
	}
	if hb := info.Endpoints[1]; hb.Name != "heartbeat" || hb.Subject != wire.HeartbeatSubject(h.id) {
		t.Errorf("endpoint %+v, want heartbeat on %s", hb, wire.HeartbeatSubject(h.id))
	}

	// The instance answers on its own subjects too, with its counters.
	subject, err = micro.ControlSubject(micro.StatsVerb, worker.ServiceName, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	// micro counts a request once its handler has returned, which may be
	// after the call's reply went out: poll.
	deadline := time.Now().Add(timeout)
	for {
		msg, err = h.nc.Request(subject, nil, timeout)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		var stats micro.Stats
		if err := json.Unmarshal(msg.Data, &stats); err != nil {
			t.Fatal(err)
		}
		if len(stats.Endpoints) != 8+len(registry.Functions()) {
			t.Fatalf("stats of %d endpoints, want 8 and one per function", len(stats.Endpoints))
		}
		if ep := stats.Endpoints[0]; ep.NumRequests >= 1 {
			if ep.Name != "call" || ep.Subject != wire.CallSubject(h.id) {
				t.Errorf("stats endpoint %s on %s", ep.Name, ep.Subject)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want the call counted", *stats.Endpoints[0])
		}
		time.Sleep(time.Millisecond)
	}

	// Once closed, it is no longer listed.
	if err := h.w.Close(); err != nil {
		t.Fatal(err)
	}
	subject, _ = micro.ControlSubject(micro.PingVerb, worker.ServiceName, "")
	deadline = time.Now().Add(timeout)
	for {
		_, err := h.nc.Request(subject, nil, timeout)
		if errors.Is(err, nats.ErrNoResponders) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the closed worker still answers %s: %v", subject, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestClosedWorkerLetsGoOfTheConnection: a worker served on a connection
// it shares wraps the connection's handlers; once closed, they only pass
// on to the handlers that were there before, and the closed worker can be
// collected.
func TestClosedWorkerLetsGoOfTheConnection(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	reconnected := make(chan struct{}, 4)
	nc, err := nats.Connect(srv.URL(), nats.Token(srv.Token()), nats.ReconnectWait(10*time.Millisecond), nats.MaxReconnects(-1),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	collected := make(chan struct{})
	func() {
		w, err := worker.Serve(nc, worker.WithID("w-shared"))
		if err != nil {
			t.Fatal(err)
		}
		runtime.AddCleanup(w, func(ch chan struct{}) { close(ch) }, collected)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		runtime.GC()
		select {
		case <-collected:
		case <-time.After(20 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
			t.Fatal("the closed worker is still reachable")
		}
		break
	}
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection's own reconnect handler was not called")
	}
}
