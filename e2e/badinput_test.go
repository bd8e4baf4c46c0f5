//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
)

// Node is a value that can point to itself.
type Node struct {
	V    int
	Next *Node
	Any  any
}

// Walk is registered here only: a cycle must fail before anything is sent.
var Walk = bus.Register("e2e.walk", func(_ context.Context, n *Node) (int, error) { return n.V, nil })

// forged sends a call envelope as master id would, whoever sends it, and
// returns the worker's error.
func forged(t *testing.T, nc *nats.Conn, workerID string, c *wire.Call, arg any) error {
	t.Helper()
	if c.ID == 0 {
		c.ID = 1
	}
	data, err := wire.AppendCall(nil, c, arg)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := nc.Request(wire.CallSubject(workerID), data, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, _, remote, err := wire.DecodeReply(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if remote == nil {
		return nil
	}
	return remote
}

// TestBadInputs is one table of the bad inputs the public API and the wire
// may meet. Each gives its named error and a message naming what was
// wrong; none is lost, none hangs, none takes a goroutine or a process
// away with it (goleak checks the goroutines in TestMain), and the worker
// serves on after all of them.
func TestBadInputs(t *testing.T) {
	ctx := testCtx(t)
	m := newMaster(t)
	s := spawn(t, m)
	counter, err := master.Wrap(ctx, s, builtin.NewCounter, int64(1))
	if err != nil {
		t.Fatal(err)
	}
	defer counter.Close()
	// A second master, on the same server, with a Ref of its own.
	other, err := master.Connect(ctx, m.URL(), master.WithToken(m.Token()), master.WithServerID(s.ID()))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	theirs, err := master.Wrap(ctx, other, builtin.NewCounter, int64(100))
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	closed, err := master.Wrap(ctx, s, builtin.NewCounter, int64(1))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	cyclic := &Node{V: 1}
	cyclic.Next = &Node{V: 2, Next: cyclic}
	loop := &Node{V: 3}
	loop.Any = loop
	selfMap := map[string]any{}
	selfMap["me"] = selfMap
	long := &Node{}
	for i := 0; i < 3*codec.MaxDepth; i++ {
		long = &Node{V: i, Next: long}
	}
	deep := msgpackRaw(append(bytes.Repeat([]byte{0x91}, 500_000), 0x01)) // [[[…[1]…]]]
	huge := make([]any, 5000)
	for i := range huge {
		huge[i] = i
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	past, cancelPast := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancelPast()
	var zeroSlave master.Slave
	var nilSlave *master.Slave
	var zeroRef master.Ref
	var zeroTask master.Task[int]
	var nilFunc *bus.Func[[]int, int]
	var zeroPool master.Pool

	for _, tc := range []struct {
		name  string
		call  func() error
		want  error
		texts []string
	}{
		// Functions and executors.
		{"nil function", func() error { _, err := master.Invoke(ctx, s, nilFunc, []int{1}); return err }, master.ErrBadCall, []string{"nil function"}},
		{"nil executor", func() error { _, err := master.Invoke(ctx, nil, Sum, []int{1}); return err }, master.ErrBadCall, nil},
		{"zero-value Slave", func() error { _, err := master.Invoke(ctx, &zeroSlave, Sum, []int{1}); return err }, master.ErrBadCall, nil},
		{"nil *Slave", func() error { _, err := master.Invoke(ctx, nilSlave, Sum, []int{1}); return err }, master.ErrBadCall, nil},
		{"unknown function", func() error { _, err := master.Invoke(ctx, s, NotOnWorker, 1); return err }, bus.ErrUnknownFunction, []string{"e2e.not-on-worker", s.ID()}},
		{"function registered here only, cyclic value", func() error { _, err := master.Invoke(ctx, s, Walk, cyclic); return err }, bus.ErrEncode, []string{"cycle", "*e2e.Node"}},
		{"a value that holds itself in an any", func() error { _, err := master.Invoke(ctx, s, Walk, loop); return err }, bus.ErrEncode, []string{"cycle"}},
		{"a map that holds itself", func() error { _, err := counter.Call(ctx, "Add", selfMap); return err }, bus.ErrEncode, []string{"cycle"}},
		{"a value nested too deep", func() error { _, err := master.Invoke(ctx, s, Walk, long); return err }, bus.ErrEncode, []string{"nested deeper than"}},
		{"a message nested too deep", func() error { return rawCall(t, m, s, "sum", deep) }, bus.ErrArgumentType, []string{"nested deeper than"}},
		{"wrong argument type on the wire", func() error { return rawCall(t, m, s, "sha256", map[string]int{"a": 1}) }, bus.ErrArgumentType, []string{"[]uint8", "map[string]int"}},
		{"undecodable payload", func() error {
			msg, err := m.Conn().Request(wire.CallSubject(s.ID()), []byte("not msgpack at all"), 10*time.Second)
			if err != nil {
				return err
			}
			_, _, remote, err := wire.DecodeReply(msg.Data)
			if err != nil {
				return err
			}
			return remote
		}, bus.ErrBadPayload, nil},
		{"remote panic", func() error { _, err := master.Invoke(ctx, s, Panic, "boom"); return err }, bus.ErrPanic, []string{"boom"}},
		{"cancelled context", func() error { _, err := master.Invoke(cancelled, s, Sum, []int{1}); return err }, context.Canceled, nil},
		{"deadline passed", func() error { _, err := master.Invoke(past, s, Sum, []int{1}); return err }, context.DeadlineExceeded, nil},
		{"too big", func() error {
			small, err := master.New(ctx, master.WithNATS(m.URL()), master.WithToken(m.Token()), master.WithMaxValue(1024))
			if err != nil {
				return err
			}
			defer small.Close()
			big, err := small.Spawn(ctx, master.WithBinary(binProcessional))
			if err != nil {
				return err
			}
			defer big.Close()
			_, err = master.Invoke(ctx, big, Sum, make([]int, 2000))
			return err
		}, bus.ErrTooBig, []string{"1024"}},

		// Tasks.
		{"zero-value Task", func() error { _, err := zeroTask.Wait(ctx); return err }, master.ErrBadCall, nil},

		// Objects.
		{"nil constructor", func() error { _, err := master.Wrap[int64, *builtin.Counter](ctx, s, nil, 1); return err }, master.ErrBadCall, []string{"nil constructor"}},
		{"zero-value Ref", func() error { _, err := zeroRef.Call(ctx, "Add", 1); return err }, master.ErrBadCall, []string{"zero Ref"}},
		{"closed Ref", func() error { _, err := closed.Call(ctx, "Add", 1); return err }, bus.ErrObjectGone, []string{"closed"}},
		{"no such method", func() error { _, err := counter.Call(ctx, "Nope"); return err }, bus.ErrNoMember, []string{"Nope", "Add"}},
		{"huge argument count", func() error { _, err := counter.Call(ctx, "Add", huge...); return err }, bus.ErrArgumentType, []string{"5000"}},
		{"huge argument count on the wire", func() error {
			return forged(t, m.Conn(), s.ID(), &wire.Call{Kind: wire.KindCall, Master: m.ID(), Function: "@call"},
				[]any{msgpackRaw(wire.AppendRef(nil, wire.ObjectRef(counter.Object()))), "Add", false, huge})
		}, bus.ErrBadPayload, []string{"at most 1024 arguments"}},
		{"wrong method argument", func() error { _, err := counter.Call(ctx, "Add", "one"); return err }, bus.ErrArgumentType, []string{"Add"}},
		{"another master's Ref as an argument", func() error { _, err := counter.Call(ctx, "Add", theirs); return err }, bus.ErrNotHolder, []string{m.ID()}},

		// Forged messages: a master id that holds nothing, or that is not
		// the worker's owner.
		{"forged master id on another master's object", func() error {
			return forged(t, m.Conn(), s.ID(), &wire.Call{Kind: wire.KindThread, Master: "m-forged", Function: "@get"},
				[]any{msgpackRaw(wire.AppendRef(nil, wire.ObjectRef(theirs.Object()))), "N", false})
		}, bus.ErrNotHolder, []string{"m-forged"}},
		{"forged acquire from a master that holds nothing", func() error {
			o := theirs.Object()
			o.Holder = "m-forged"
			return forged(t, m.Conn(), s.ID(), &wire.Call{Kind: wire.KindThread, Master: "m-thief", Function: "@acquire"},
				[]any{msgpackRaw(wire.AppendRef(nil, wire.ObjectRef(o)))})
		}, bus.ErrNotHolder, []string{"m-forged"}},
		{"acquire naming the real holder, without the object's secret", func() error {
			o := theirs.Object()
			o.Holder, o.Secret = other.Master().ID(), o.Secret+1
			return forged(t, m.Conn(), s.ID(), &wire.Call{Kind: wire.KindThread, Master: "m-thief", Function: "@acquire"},
				[]any{msgpackRaw(wire.AppendRef(nil, wire.ObjectRef(o)))})
		}, bus.ErrNotHolder, []string{"secret"}},
		{"forged detach by a master that is not the owner", func() error {
			return forged(t, m.Conn(), s.ID(), &wire.Call{Kind: wire.KindDetach, Master: "m-forged"}, nil)
		}, bus.ErrNotOwner, []string{"m-forged"}},

		// Configuration.
		{"bad worker id", func() error { _, err := m.Spawn(ctx, master.WithID("a.b")); return err }, master.ErrConfig, []string{"a.b"}},
		{"empty worker user", func() error { _, err := m.Spawn(ctx, master.WithWorkerUserInfo("", "pw")); return err }, master.ErrConfig, []string{"user"}},
		{"empty worker credentials file", func() error { _, err := m.Spawn(ctx, master.WithWorkerCredentials("")); return err }, master.ErrConfig, []string{"credentials"}},
		{"bad lease", func() error { _, err := master.New(ctx, master.WithLease(-1, 0)); return err }, master.ErrConfig, nil},
		{"bad max value", func() error { _, err := master.New(ctx, master.WithMaxValue(0)); return err }, master.ErrConfig, nil},
		{"empty server address", func() error { _, err := master.Connect(ctx, ""); return err }, master.ErrConfig, nil},
		{"TLS key without certificate", func() error { _, err := master.New(ctx, master.WithTLS("", "key.pem", "")); return err }, master.ErrConfig, []string{"key.pem"}},
		{"credentials for the embedded server", func() error { _, err := master.New(ctx, master.WithCredentials("x.creds")); return err }, master.ErrConfig, []string{"WithNATS"}},
		{"zero-value Pool", func() error { _, errs := master.Map(ctx, &zeroPool, Sum, [][]int{{1}}); return errors.Join(errs...) }, master.ErrBadCall, nil},
		{"nil Pool", func() error { _, errs := master.Map(ctx, nil, Sum, [][]int{{1}}); return errors.Join(errs...) }, master.ErrBadCall, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- tc.call() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("hung")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			t.Log(err)
			for _, text := range tc.texts {
				if !strings.Contains(err.Error(), text) {
					t.Errorf("err = %q, want it to name %q", err, text)
				}
			}
		})
	}

	// A registration gone wrong fails at start-up, naming the function.
	for _, tc := range []struct {
		name, text string
		register   func()
	}{
		{"nil function", `bus: Register("e2e.nil"): nil function`, func() {
			bus.Register[int, int]("e2e.nil", nil)
		}},
		{"bad name", "e2e bad name", func() {
			bus.Register("e2e bad name", func(context.Context, int) (int, error) { return 0, nil })
		}},
		{"a type that cannot travel", "chan int", func() {
			bus.Register("e2e.chan", func(context.Context, chan int) (int, error) { return 0, nil })
		}},
	} {
		t.Run("Register: "+tc.name, func(t *testing.T) {
			defer func() {
				if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), tc.text) {
					t.Fatalf("panic %v, want one naming %q", p, tc.text)
				}
			}()
			tc.register()
		})
	}

	// Nothing lost: the worker holds no call of ours, and serves on; the
	// other master's object is untouched.
	if n, err := master.Invoke(ctx, s, Sum, []int{2, 2}); n != 4 || err != nil {
		t.Fatalf("after the bad inputs: %d, %v", n, err)
	}
	if n, err := master.Field[int64](ctx, theirs, "N"); n != 100 || err != nil {
		t.Fatalf("the other master's counter: %d, %v", n, err)
	}
	msg, err := m.Conn().Request(wire.ControlSubject(s.ID(), "pending"), nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var pending []json.RawMessage
	if err := json.Unmarshal(msg.Data, &pending); err != nil || len(pending) != 0 {
		t.Fatalf("calls pending on the worker after the bad inputs: %s (%v)", bytes.TrimSpace(msg.Data), err)
	}
}

// msgpackRaw is an already encoded msgpack value.
type msgpackRaw []byte

func (r msgpackRaw) MarshalMsgpack() ([]byte, error) { return r, nil }
