package worker_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/worker"
)

// beat sends one heartbeat from master, with a lease of length, and waits
// for the worker's acknowledgement.
func (h *harness) beat(t *testing.T, master string, length time.Duration) {
	t.Helper()
	data := encodeCall(t, wire.Call{Kind: wire.KindHeartbeat, Master: master, Timeout: length}, nil)
	msg, err := h.nc.Request(wire.HeartbeatSubject(h.id), data, timeout)
	if err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	id, raw, re, err := wire.DecodeReply(msg.Data)
	// Its id is the worker's epoch: its process (the high half, never 0)
	// and no reconnect yet (the low half).
	if err != nil || re != nil || id>>32 == 0 || id&(1<<32-1) != 0 {
		t.Fatalf("heartbeat ack: %#x, %v, %v", id, re, err)
	}
	var worker string
	if err := codec.Unmarshal(raw, &worker); err != nil || worker != h.id {
		t.Fatalf("heartbeat ack names %q, %v; want %q", worker, err, h.id)
	}
}

func TestLeaseLapses(t *testing.T) {
	h := start(t)
	in := h.inbox(t)
	const other = "m-other"
	lease := 200 * time.Millisecond
	h.beat(t, owner, lease)
	h.beat(t, other, time.Hour)
	running, g := newGate(t)
	queued, gq := newGate(t)
	concurrent, gc := newGate(t)
	otherKey, gOther := newGate(t)
	in.send(t, wire.Call{Kind: wire.KindCall, Master: owner, ID: 1, Function: "worker_test.block"}, running)
	in.send(t, wire.Call{Kind: wire.KindCall, Master: owner, ID: 2, Function: "worker_test.block"}, queued)
	in.send(t, wire.Call{Kind: wire.KindThread, Master: owner, ID: 3, Function: "worker_test.block"}, concurrent)
	in.send(t, wire.Call{Kind: wire.KindCall, Master: other, ID: 4, Function: "worker_test.block"}, otherKey)
	g.waitStarted(t)
	gc.waitStarted(t)
	gOther.waitStarted(t)
	if _, ok := h.w.Leases()[owner]; !ok {
		t.Fatalf("leases %v lack %s", h.w.Leases(), owner)
	}

	// The owner goes silent: its running, queued and concurrent calls end
	// once its lease lapses; the other master's call goes on.
	start := time.Now()
	got := map[uint64]*bus.RemoteError{}
	for range 3 {
		r := in.next(t)
		got[r.id] = r.re
	}
	lapse := time.Since(start)
	for id := uint64(1); id <= 3; id++ {
		if !is(got[id], bus.ErrLeaseLapsed) {
			t.Errorf("call %d: %v, want ErrLeaseLapsed", id, got[id])
		}
	}
	if lapse < lease/2 || lapse > 3*lease {
		t.Errorf("the calls ended %s after the last heartbeat, lease %s", lapse, lease)
	}
	if gq.hasStarted() {
		t.Error("the queued call of a lapsed master ran")
	}
	if _, ok := h.w.Leases()[owner]; ok {
		t.Error("the lapsed lease is still listed")
	}
	// The owner's lease lapsed: the worker says so.
	waitClosed(t, h.w.Lapsed(), "Lapsed")
	if len(gOther.ended) > 0 {
		t.Fatal("the other master's call ended with the lapsed one's")
	}
	gOther.open()
	if r := in.next(t); r.id != 4 || r.re != nil {
		t.Fatalf("the other master's call: %d, %v", r.id, r.re)
	}
}

// TestHeartbeatNeverWaitsBehindCalls checks that a worker whose master's
// blocking call never returns, with more queued behind it, still renews
// that master's lease: the gate stays shut until the heartbeat is
// answered, so a heartbeat queued with the calls would hang here. (That a
// backlog in the subscription cannot delay it either is structural: the
// heartbeat has its own endpoint, see TestMicroService.)
func TestHeartbeatNeverWaitsBehindCalls(t *testing.T) {
	h := start(t)
	in := h.inbox(t)
	key, g := newGate(t)
	in.send(t, wire.Call{Kind: wire.KindCall, ID: 1, Function: "worker_test.block"}, key)
	g.waitStarted(t)
	for i := range 1000 {
		in.send(t, wire.Call{Kind: wire.KindCall, ID: uint64(i + 2), Function: "worker_test.echo"}, "x")
	}
	h.beat(t, master, time.Second) // fails after `timeout` if it waits for the gate
	if _, ok := h.w.Leases()[master]; !ok {
		t.Fatal("the heartbeat renewed no lease")
	}
	g.open()
}

func TestBadHeartbeatsAreIgnored(t *testing.T) {
	h := start(t)
	for _, data := range [][]byte{
		[]byte("garbage"),
		encodeCall(t, wire.Call{Kind: wire.KindCall, Master: master}, nil),                  // not a heartbeat
		encodeCall(t, wire.Call{Kind: wire.KindHeartbeat, Master: master, Timeout: 0}, nil), // no lease length
	} {
		if _, err := h.nc.Request(wire.HeartbeatSubject(h.id), data, 100*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("a bad heartbeat was answered: %v", err)
		}
	}
	if len(h.w.Leases()) != 0 {
		t.Fatalf("bad heartbeats made leases: %v", h.w.Leases())
	}
	// They are counted, in the heartbeat endpoint's micro stats.
	subject, err := micro.ControlSubject(micro.StatsVerb, worker.ServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := h.nc.Request(subject, nil, timeout)
	if err != nil {
		t.Fatal(err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(msg.Data, &stats); err != nil {
		t.Fatal(err)
	}
	var counts map[string]int64
	for _, ep := range stats.Endpoints {
		if ep.Name == "heartbeat" {
			json.Unmarshal(ep.Data, &counts)
		}
	}
	if counts["ignored"] != 3 {
		t.Fatalf("heartbeat stats %v, want 3 ignored", counts)
	}
	h.beat(t, master, time.Hour) // the worker still serves heartbeats
}

func TestLapsedMasterIsToldAndClosedOneIgnored(t *testing.T) {
	h := start(t)
	h.beat(t, "m-lapsing", 50*time.Millisecond)
	deadline := time.Now().Add(timeout)
	for _, ok := h.w.Leases()["m-lapsing"]; ok; _, ok = h.w.Leases()["m-lapsing"] {
		if time.Now().After(deadline) {
			t.Fatal("the lease never lapsed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Its next heartbeat is answered with ErrLeaseLapsed, not a new lease.
	data := encodeCall(t, wire.Call{Kind: wire.KindHeartbeat, Master: "m-lapsing", Timeout: time.Second}, nil)
	msg, err := h.nc.Request(wire.HeartbeatSubject(h.id), data, timeout)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, re, err := wire.DecodeReply(msg.Data); err != nil || !is(re, bus.ErrLeaseLapsed) {
		t.Fatalf("heartbeat after the lapse: %v, %v; want ErrLeaseLapsed", re, err)
	}
	if _, ok := h.w.Leases()["m-lapsing"]; ok {
		t.Fatal("a lapsed master got its lease back")
	}
	// Nor do its calls run, leaseless.
	if _, re := h.call(t, wire.Call{Master: "m-lapsing", ID: 3, Function: "worker_test.echo"}, "x"); !is(re, bus.ErrLeaseLapsed) {
		t.Fatalf("a call from a lapsed master: %v, want ErrLeaseLapsed", re)
	}
	// Only the owner detaches or persists its worker.
	for _, kind := range []wire.Kind{wire.KindDetach, wire.KindPersist} {
		if _, re := h.call(t, wire.Call{Kind: kind, Master: "m-intruder", ID: 4}, nil); !is(re, bus.ErrNotOwner) {
			t.Fatalf("%s from another master: %v, want ErrNotOwner", kind, re)
		}
	}
	if h.w.Persistent() {
		t.Fatal("a non-owner made the worker persistent")
	}
	// A master that closed: its late heartbeats give it no lease.
	h.beat(t, master, time.Second)
	h.call(t, wire.Call{Kind: wire.KindClose, ID: 9}, nil)
	data = encodeCall(t, wire.Call{Kind: wire.KindHeartbeat, Master: master, Timeout: time.Second}, nil)
	if err := h.nc.Publish(wire.HeartbeatSubject(h.id), data); err != nil {
		t.Fatal(err)
	}
	h.beat(t, "m-other", time.Second) // after the stray heartbeat, in order
	if _, ok := h.w.Leases()[master]; ok {
		t.Fatalf("a closed master's stray heartbeat gave it a lease: %v", h.w.Leases())
	}
}
