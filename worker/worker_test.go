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
			// The worker has it once it lists it pending (or, beside a
			// thread, has run it already).
			deadline := time.Now().Add(timeout)
			for !listsPending(h.w, 2) {
				if order, _ := log.snapshot(); len(order) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the worker never took call 2: pending %+v", h.w.Pending())
				}
				time.Sleep(time.Millisecond)
			}

			closeDone := make(chan error, 1)
			go func() { closeDone <- h.w.Close() }()

			// Calls that arrive while the worker closes fail with ErrClosed.
			deadline = time.Now().Add(timeout)
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

// listsPending reports whether w lists call id pending, queued or running.
func listsPending(w *worker.Worker, id uint64) bool {
	for _, p := range w.Pending() {
		if p.ID == id {
			return true
		}
	}
	return false
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
		{"calls", info.Metadata["calls"], wire.CallSubject(h.id)},
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
	if got := strings.Join(names[:min(8, len(names))], ","); got != "heartbeat,calls,hello,leases,stop,refs,pending,stack" {
		t.Fatalf("endpoints %s, want heartbeat,calls,hello,leases,stop,refs,pending,stack first", got)
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
	if hb := info.Endpoints[0]; hb.Name != "heartbeat" || hb.Subject != wire.HeartbeatSubject(h.id) {
		t.Errorf("endpoint %+v, want heartbeat on %s", hb, wire.HeartbeatSubject(h.id))
	}
	// The calls come on a subscription of the worker's own (the subject
	// of the metadata's "calls"); the calls endpoint counts them.
	if ep := info.Endpoints[1]; ep.Name != "calls" || ep.Subject != wire.ControlSubject(h.id, "calls") {
		t.Errorf("endpoint %+v, want calls on %s", ep, wire.ControlSubject(h.id, "calls"))
	}

	// The instance answers on its own subjects too, with its counters:
	// the call above was counted before it was answered.
	subject, err = micro.ControlSubject(micro.StatsVerb, worker.ServiceName, info.ID)
	if err != nil {
		t.Fatal(err)
	}
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
	var per map[string]worker.FunctionStat
	if ep := stats.Endpoints[1]; ep.Name != "calls" || json.Unmarshal(ep.Data, &per) != nil || per["worker_test.echo"].Requests != 1 {
		t.Errorf("stats endpoint %s: %s, want worker_test.echo counted once", ep.Name, ep.Data)
	}

	// Once closed, it is no longer listed.
	if err := h.w.Close(); err != nil {
		t.Fatal(err)
	}
	subject, _ = micro.ControlSubject(micro.PingVerb, worker.ServiceName, "")
	deadline := time.Now().Add(timeout)
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
