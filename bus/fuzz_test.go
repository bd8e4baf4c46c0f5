package bus_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/shm"
)

// Fuzz targets for every decoder that reads bytes from the bus. `go test`
// runs their seeds; .ci/run also fuzzes each for a few seconds. A crash
// found is fixed, and its input kept in testdata/fuzz.

func seedCalls(f *testing.F) {
	for _, arg := range []any{1, "x", []int{1, 2, 3}, map[string]any{"a": 1.5}, nil, []byte("bytes")} {
		data, err := bus.AppendCall(nil, &bus.Call{Kind: bus.KindCall, Master: "m-1", ID: 7, Function: "sum", ArgType: "[]int", PID: 42}, arg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(bus.AppendCallChunk(nil, &bus.Chunk{Master: "m-1", ID: 3, Index: 0, Count: 2, Total: 10, Data: []byte("01234")}))
	f.Add(bus.AppendRef(nil, bus.ObjectRef{Worker: "w-1", ID: 9, Type: "*main.T"}))
	f.Add([]byte{0x99, 0x02, 0xcc, 0xff})
}

func FuzzCallRoundTrip(f *testing.F) {
	seedCalls(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var c bus.Call
		if err := bus.DecodeCall(data, &c); err != nil {
			if !errors.Is(err, bus.ErrBadPayload) && !errors.Is(err, bus.ErrProtocolVersion) {
				t.Fatalf("an error with no sentinel: %v", err)
			}
			return
		}
		// What decodes encodes again to the same header.
		var back bus.Call
		again, err := bus.AppendCall(nil, &c, nil)
		if err != nil || bus.DecodeCall(again, &back) != nil || back.Master != c.Master || back.ID != c.ID || back.Function != c.Function || back.PID != c.PID {
			t.Fatalf("round trip of %+v: %+v, %v", c, back, err)
		}
	})
}

func FuzzReplyAndChunks(f *testing.F) {
	ok, _ := bus.AppendReply(nil, 5, []int{1, 2})
	f.Add(ok)
	f.Add(bus.AppendErrorReply(nil, 6, &bus.RemoteError{Type: "*errors.errorString", Message: "m", Worker: "w", Sentinels: []string{"bus.ErrPanic"}}))
	f.Add(bus.AppendReplyChunk(nil, &bus.Chunk{ID: 3, Index: 1, Count: 2, Total: 10, Data: []byte("56789")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, raw, remote, err := bus.DecodeReply(data)
		if err == nil && raw == nil && remote == nil {
			t.Fatal("a reply with neither result nor error")
		}
		if remote != nil {
			_ = remote.Error()
			_ = errors.Is(remote, bus.ErrPanic)
		}
		var c bus.Chunk
		bus.DecodeReplyChunk(data, &c)
	})
}

func FuzzUnmarshal(f *testing.F) {
	seedCalls(f)
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // 2^32-1 elements announced
	f.Add([]byte{0xdf, 0x7f, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		var a any
		bus.Unmarshal(data, &a)
		var xs []int
		bus.Unmarshal(data, &xs)
		var m map[string][]string
		bus.Unmarshal(data, &m)
		var s struct {
			A []byte
			B map[int]float64
			C *struct{ D []string }
		}
		bus.Unmarshal(data, &s)
		bus.SplitArray(data, nil)
		bus.DecodeString(data)
		var x int64
		bus.DecodeScalar(data, reflect.ValueOf(&x).Elem())
	})
}

func FuzzReference(f *testing.F) {
	f.Add(bus.AppendRef(nil, bus.ObjectRef{Worker: "w-1", ID: 9, Type: "*main.T"}))
	f.Add([]byte{0xd4, 0x01, 0x00})
	f.Add([]byte{0xc7, 0x20, 0x01, 0x93})
	f.Add(bus.AppendRef(nil, bus.ObjectRef{Worker: "w-1", ID: 9, Type: "*main.T", Holder: "m-1"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := bus.DecodeRef(data)
		if err == nil && !bus.ValidID(r.Worker) {
			t.Fatalf("a reference to worker %q", r.Worker)
		}
		if err == nil && r.Holder != "" && !bus.ValidID(r.Holder) {
			t.Fatalf("a reference passed on by %q", r.Holder)
		}
		if err == nil {
			back, err := bus.DecodeRef(bus.AppendRef(nil, r))
			if err != nil || back != r {
				t.Fatalf("%+v round-trips to %+v, %v", r, back, err)
			}
		}
		bus.RefID(data, "w-1")
		bus.IsRef(data)
	})
}

// FuzzShmReference decodes crafted shared-memory references: none may map
// anything outside a segment, nor anything that is not one of ours.
func FuzzShmReference(f *testing.F) {
	f.Add([]byte{0xc7, 0x05, byte(bus.ShmExtType), 0x94, 0xa1, 'x', 0, 0})
	f.Add([]byte{0xc4, 0x03, 1, 2, 3})
	f.Add([]byte{0xc0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var b *shm.Buffer
		if err := bus.Unmarshal(data, &b); err == nil && b != nil {
			if b.Shared() {
				t.Fatalf("a crafted reference mapped %s", b)
			}
			b.Close()
		}
		bus.DropTransits(data)
		bus.HasShm(data)
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
		n, err := fuzzJSON.Function().InvokeJSON(context.Background(), body)
		if err != nil && !errors.Is(err, bus.ErrArgumentType) {
			t.Fatalf("%q: an error with no sentinel: %v", body, err)
		}
		if err == nil && n == nil {
			t.Fatalf("%q: no result", body)
		}
	})
}
