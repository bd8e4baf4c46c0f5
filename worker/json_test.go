package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/worker"
)

func TestJSONCalls(t *testing.T) {
	h := start(t)
	req := func(function, body string) (string, string, string) {
		t.Helper()
		msg, err := h.nc.Request(wire.JSONSubject(h.id, function), []byte(body), timeout)
		if err != nil {
			t.Fatalf("%s %s: %v", function, body, err)
		}
		return string(msg.Data), msg.Header.Get(micro.ErrorCodeHeader), msg.Header.Get(micro.ErrorHeader)
	}
	if body, code, _ := req("worker_test.sum", "[1,2,3]"); body != "6" || code != "" {
		t.Fatalf("sum [1,2,3] = %s (code %q)", body, code)
	}
	if body, code, _ := req("worker_test.echo", `"hi"`); body != `"hi"` || code != "" {
		t.Fatalf("echo = %s (code %q)", body, code)
	}
	for _, tc := range []struct {
		function, body, code string
		want                 []string
	}{
		{"worker_test.sum", `["a"]`, "400", []string{"wrong argument type", "[]int", "got JSON string"}},
		{"worker_test.sum", `{"x":1}`, "400", []string{"expects []int", "got JSON object"}},
		{"worker_test.sum", `[1,`, "400", []string{"not JSON"}},
		{"worker_test.fail", `3`, "500", []string{"item 3", "failure"}},
		{"worker_test.panic", `"boom"`, "500", []string{"panic: boom"}},
	} {
		body, code, header := req(tc.function, tc.body)
		if code != tc.code {
			t.Errorf("%s %s: code %q, want %q (%s)", tc.function, tc.body, code, tc.code, body)
			continue
		}
		var re bus.RemoteError
		if err := json.Unmarshal([]byte(body), &re); err != nil || re.Worker != h.id || re.Function != tc.function {
			t.Errorf("%s %s: error body %s: %v", tc.function, tc.body, body, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(re.Message, w) && !strings.Contains(re.Stack, w) {
				t.Errorf("%s %s: %q does not say %q", tc.function, tc.body, re.Message, w)
			}
		}
		if header != re.Message {
			t.Errorf("header %q, body message %q", header, re.Message)
		}
	}
}

func TestDiagnosisVerbs(t *testing.T) {
	h := start(t)
	// A call running, one queued behind it, and a concurrent one.
	k1, g1 := newGate(t)
	k3, g3 := newGate(t)
	send := func(kind wire.Kind, id uint64, function string, arg any) {
		h.nc.Publish(h.subject(), encodeCall(t, wire.Call{Kind: kind, Master: master, ID: id, Function: function, ArgType: "string"}, arg))
	}
	send(wire.KindCall, 1, "worker_test.block", k1)
	send(wire.KindCall, 2, "worker_test.echo", "queued")
	send(wire.KindThread, 3, "worker_test.block", k3)
	g1.waitStarted(t)
	g3.waitStarted(t)
	var pending []worker.PendingCall
	deadline := time.Now().Add(timeout)
	for {
		msg, err := h.nc.Request(wire.ControlSubject(h.id, "pending"), nil, timeout)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(msg.Data, &pending); err != nil {
			t.Fatal(err)
		}
		if len(pending) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending %+v, want 3 calls", pending)
		}
		time.Sleep(5 * time.Millisecond)
	}
	states := map[uint64]string{}
	for _, p := range pending {
		states[p.ID] = p.State + " " + p.Kind + " " + p.Function
		if p.Master != master {
			t.Errorf("pending call of master %q", p.Master)
		}
	}
	want := map[uint64]string{1: "running call worker_test.block", 2: "queued call worker_test.echo", 3: "running thread worker_test.block"}
	for id, w := range want {
		if states[id] != w {
			t.Errorf("call %d: %q, want %q", id, states[id], w)
		}
	}
	msg, err := h.nc.Request(wire.ControlSubject(h.id, "stack"), nil, timeout)
	if err != nil || !strings.Contains(string(msg.Data), "goroutine ") || !strings.Contains(string(msg.Data), "worker_test") {
		t.Fatalf("stack: %v\n%.400s", err, msg.Data)
	}
	g1.open()
	g3.open()
}

func TestFunctionStats(t *testing.T) {
	h := start(t)
	for i := range 3 {
		h.call(t, wire.Call{ID: uint64(i + 1), Function: "worker_test.sum"}, []int{1, 2})
	}
	h.call(t, wire.Call{ID: 9, Function: "worker_test.fail"}, 1)
	msg, err := h.nc.Request("$SRV.STATS.processional", nil, timeout) // the only worker on this server
	if err != nil {
		t.Fatal(err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(msg.Data, &stats); err != nil {
		t.Fatal(err)
	}
	// The calls verb answers the same counts as the calls endpoint's data.
	verb, err := h.nc.Request(wire.ControlSubject(h.id, "calls"), nil, timeout)
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range stats.Endpoints {
		if ep.Name != "calls" {
			continue
		}
		var per, answered map[string]worker.FunctionStat
		if err := json.Unmarshal(ep.Data, &per); err != nil {
			t.Fatalf("the calls endpoint's data %s: %v", ep.Data, err)
		}
		if err := json.Unmarshal(verb.Data, &answered); err != nil || answered["worker_test.sum"] != per["worker_test.sum"] {
			t.Errorf("the calls verb answered %s, the stats %s", verb.Data, ep.Data)
		}
		if s := per["worker_test.sum"]; s.Requests != 3 || s.Errors != 0 {
			t.Errorf("sum: %+v", s)
		}
		if s := per["worker_test.fail"]; s.Requests != 1 || s.Errors != 1 {
			t.Errorf("fail: %+v", s)
		}
		return
	}
	t.Fatal("no calls endpoint in the stats")
}

// foreverEnded says when worker_test.forever's producer ended, and why.
var foreverEnded = make(chan error, 1)

var _ = bus.RegisterStream("worker_test.forever", func(ctx context.Context, _ struct{}, yield func(int) bool) error {
	// A minute at most, should its caller's leaving not stop it: the
	// test then fails, and does not hang.
	for i, end := 0, time.Now().Add(time.Minute); time.Now().Before(end); i++ {
		if !yield(i) {
			foreverEnded <- context.Cause(ctx)
			return nil
		}
		select {
		case <-ctx.Done():
			foreverEnded <- context.Cause(ctx)
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	foreverEnded <- nil
	return nil
})

// A JSON caller that leaves a stream (as `nats req --replies 0` does when
// interrupted) stops its producer: the server says nobody receives its
// items, and once it has said so for the grace (2 s), the producer's
// context ends.
func TestJSONStreamCallerLeaves(t *testing.T) {
	h := start(t)
	inbox := nats.NewInbox()
	sub, err := h.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.nc.PublishRequest(wire.JSONSubject(h.id, "worker_test.forever"), inbox, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		msg, err := sub.NextMsg(timeout)
		if err != nil || string(msg.Data) != fmt.Sprint(i) {
			t.Fatalf("item %d: %v", i, err)
		}
	}
	// Away for a moment, well within the grace: the items meanwhile are
	// lost, the stream is not.
	sub.Unsubscribe()
	time.Sleep(200 * time.Millisecond)
	if sub, err = h.nc.SubscribeSync(inbox); err != nil {
		t.Fatal(err)
	}
	for range 3000 { // 3 s of items at most: past the grace
		if _, err := sub.NextMsg(timeout); err != nil {
			t.Fatalf("after a moment away, the stream ended: %v", err)
		}
	}
	select {
	case cause := <-foreverEnded:
		t.Fatalf("the producer ended after its caller was away for a moment: %v", cause)
	default:
	}
	sub.Unsubscribe() // the caller leaves
	select {
	case cause := <-foreverEnded:
		if cause == nil || !strings.Contains(cause.Error(), "caller left") {
			t.Fatalf("the producer ended with its context's cause %v, want the caller's leaving", cause)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the producer still runs 20 s after its caller left")
	}
}

var (
	_ = bus.Register("worker_test.bigJSONError", func(_ context.Context, n int) (int, error) {
		return 0, errors.New("big: " + strings.Repeat("é", n/2))
	})
	_ = bus.Register("worker_test.bigJSON", func(_ context.Context, n int) (string, error) {
		return strings.Repeat("x", n), nil
	})
)

// A JSON answer over the server's max payload is never lost: an error's
// long fields are cut, and say so; a result that big fails with
// bus.ErrTooBig, code 413, which says to call by the library.
func TestJSONOverMaxPayload(t *testing.T) {
	h := start(t)
	n := 2 * int(h.nc.MaxPayload())
	req := func(function string) *nats.Msg {
		t.Helper()
		msg, err := h.nc.Request(wire.JSONSubject(h.id, function), []byte(fmt.Sprint(n)), timeout)
		if err != nil {
			t.Fatalf("%s %d: %v", function, n, err)
		}
		return msg
	}
	msg := req("worker_test.bigJSONError")
	var re bus.RemoteError
	if err := json.Unmarshal(msg.Data, &re); err != nil || msg.Header.Get(micro.ErrorCodeHeader) != "500" {
		t.Fatalf("a big error: code %q, %v", msg.Header.Get(micro.ErrorCodeHeader), err)
	}
	if !strings.HasPrefix(re.Message, "big: éé") || !strings.Contains(re.Message, "bytes cut: over the server's max payload") || !utf8.ValidString(re.Message) {
		t.Fatalf("a big error's message: %.100q … %q", re.Message, re.Message[max(0, len(re.Message)-80):])
	}
	msg = req("worker_test.bigJSON")
	if err := json.Unmarshal(msg.Data, &re); err != nil || msg.Header.Get(micro.ErrorCodeHeader) != "413" ||
		!slices.Contains(re.Sentinels, "bus.ErrTooBig") || !strings.Contains(re.Message, "over the server's max payload") {
		t.Fatalf("a big result: code %q, %+v, %v", msg.Header.Get(micro.ErrorCodeHeader), re, err)
	}
}
