package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
)

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
		{"other protocol, other layout", []byte{0x92, 0x7f, 0xc0}, bus.ErrProtocolVersion, []string{"speaks protocol 127"}},
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
