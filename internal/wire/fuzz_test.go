package wire_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/shm"
)

// Fuzz targets for every decoder that reads bytes from the bus. `go test`
// runs their seeds; .ci/run also fuzzes each for a few seconds. A crash
// found is fixed, and its input kept in testdata/fuzz.

func seedCalls(f *testing.F) {
	for _, arg := range []any{1, "x", []int{1, 2, 3}, map[string]any{"a": 1.5}, nil, []byte("bytes")} {
		data, err := wire.AppendCall(nil, &wire.Call{Kind: wire.KindCall, Master: "m-1", ID: 7, Function: "sum", ArgType: "[]int", PID: 42}, arg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(wire.AppendCallChunk(nil, &wire.Chunk{Master: "m-1", ID: 3, Index: 0, Count: 2, Total: 10, Data: []byte("01234")}))
	f.Add(wire.AppendRef(nil, wire.ObjectRef{Worker: "w-1", ID: 9, Type: "*main.T"}))
	f.Add([]byte{0x99, 0x02, 0xcc, 0xff})
}

func FuzzCallRoundTrip(f *testing.F) {
	seedCalls(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var c wire.Call
		if err := wire.DecodeCall(data, &c); err != nil {
			if !errors.Is(err, bus.ErrBadPayload) && !errors.Is(err, bus.ErrProtocolVersion) {
				t.Fatalf("an error with no sentinel: %v", err)
			}
			return
		}
		// What decodes encodes again to the same header.
		var back wire.Call
		again, err := wire.AppendCall(nil, &c, nil)
		if err != nil || wire.DecodeCall(again, &back) != nil || back.Master != c.Master || back.ID != c.ID || back.Function != c.Function || back.PID != c.PID {
			t.Fatalf("round trip of %+v: %+v, %v", c, back, err)
		}
	})
}

func FuzzReplyAndChunks(f *testing.F) {
	ok, _ := wire.AppendReply(nil, 5, []int{1, 2})
	f.Add(ok)
	f.Add(wire.AppendErrorReply(nil, 6, &bus.RemoteError{Type: "*errors.errorString", Message: "m", Worker: "w", Sentinels: []string{"bus.ErrPanic"}}))
	f.Add(wire.AppendReplyChunk(nil, &wire.Chunk{ID: 3, Index: 1, Count: 2, Total: 10, Data: []byte("56789")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, raw, remote, err := wire.DecodeReply(data)
		if err == nil && raw == nil && remote == nil {
			t.Fatal("a reply with neither result nor error")
		}
		if remote != nil {
			_ = remote.Error()
			_ = errors.Is(remote, bus.ErrPanic)
		}
		var c wire.Chunk
		wire.DecodeReplyChunk(data, &c)
	})
}

func FuzzUnmarshal(f *testing.F) {
	seedCalls(f)
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // 2^32-1 elements announced
	f.Add([]byte{0xdf, 0x7f, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		var a any
		codec.Unmarshal(data, &a)
		var xs []int
		codec.Unmarshal(data, &xs)
		var m map[string][]string
		codec.Unmarshal(data, &m)
		var s struct {
			A []byte
			B map[int]float64
			C *struct{ D []string }
		}
		codec.Unmarshal(data, &s)
		codec.SplitArray(data, nil)
		codec.DecodeString(data)
		var x int64
		codec.DecodeScalar(data, reflect.ValueOf(&x).Elem())
	})
}

func FuzzReference(f *testing.F) {
	f.Add(wire.AppendRef(nil, wire.ObjectRef{Worker: "w-1", ID: 9, Type: "*main.T"}))
	f.Add([]byte{0xd4, 0x01, 0x00})
	f.Add([]byte{0xc7, 0x20, 0x01, 0x93})
	f.Add(wire.AppendRef(nil, wire.ObjectRef{Worker: "w-1", ID: 9, Type: "*main.T", Holder: "m-1"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := wire.DecodeRef(data)
		if err == nil && !wire.ValidID(r.Worker) {
			t.Fatalf("a reference to worker %q", r.Worker)
		}
		if err == nil && r.Holder != "" && !wire.ValidID(r.Holder) {
			t.Fatalf("a reference passed on by %q", r.Holder)
		}
		if err == nil {
			back, err := wire.DecodeRef(wire.AppendRef(nil, r))
			if err != nil || back != r {
				t.Fatalf("%+v round-trips to %+v, %v", r, back, err)
			}
		}
		wire.RefID(data, "w-1")
		wire.IsRef(data)
	})
}

// FuzzShmReference decodes crafted shared-memory references: none may map
// anything outside a segment, nor anything that is not one of ours.
func FuzzShmReference(f *testing.F) {
	f.Add([]byte{0xc7, 0x05, byte(codec.ShmExtType), 0x94, 0xa1, 'x', 0, 0})
	f.Add([]byte{0xc4, 0x03, 1, 2, 3})
	f.Add([]byte{0xc0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var b *shm.Buffer
		if err := codec.Unmarshal(data, &b); err == nil && b != nil {
			if b.Shared() {
				t.Fatalf("a crafted reference mapped %s", b)
			}
			b.Close()
		}
		codec.DropTransits(data)
		codec.HasShm(data)
	})
}

type jsonArg struct {
	Name  string
	Items []int
	Inner *struct{ Score float64 }
	Tags  map[string]bool
}

var fuzzJSON = bus.Register("bus_test.fuzzJSON", func(_ context.Context, a jsonArg) (int, error) { return len(a.Items), nil })

// FuzzJSONCall sends crafted JSON bodies to a function, as the nats CLI
// does: a body that does not fit is ErrArgumentType, never a panic.
func FuzzJSONCall(f *testing.F) {
	f.Add([]byte(`{"Name":"x","Items":[1,2],"Inner":{"Score":1.5},"Tags":{"a":true}}`))
	f.Add([]byte(`{"Items":"no"}`))
	f.Add([]byte(`[`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := lookup(fuzzJSON.Name()).InvokeJSON(context.Background(), body)
		if err != nil && !errors.Is(err, bus.ErrArgumentType) {
			t.Fatalf("%q: an error with no sentinel: %v", body, err)
		}
		if err == nil && n == nil {
			t.Fatalf("%q: no result", body)
		}
	})
}
