package wire_test

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
)

func mustReply(t testing.TB, v any) []byte {
	t.Helper()
	data, err := wire.AppendReply(nil, 0, v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestReplyRoundTrip(t *testing.T) {
	big := make([]byte, 70000)
	for i := range big {
		big[i] = byte(i)
	}
	for _, tc := range []struct {
		name   string
		result any
	}{
		{"nil", nil},
		{"empty struct", struct{}{}},
		{"int", 42},
		{"max uint64", uint64(math.MaxUint64)},
		{"string", "héllo"},
		{"long string", strings.Repeat("x", 70000)},
		{"bytes", big},
		{"struct", point{1, 2, "p"}},
		{"slice", []point{{1, 2, "a"}, {3, 4, "b"}}},
		{"map", map[string][]int{"a": {1}, "b": nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("keep")
			data, err := wire.AppendReply(append([]byte(nil), prefix...), math.MaxUint64-7, tc.result)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, prefix) {
				t.Fatal("AppendReply lost dst")
			}
			id, res, re, err := wire.DecodeReply(data[len(prefix):])
			if id != math.MaxUint64-7 {
				t.Fatalf("DecodeReply id = %d, want %d", id, uint64(math.MaxUint64-7))
			}
			if err != nil || re != nil {
				t.Fatalf("DecodeReply = %v, %v", re, err)
			}
			if tc.result == nil {
				if !bytes.Equal(res, []byte{0xc0}) {
					t.Fatalf("result bytes = % x, want msgpack nil", res)
				}
				return
			}
			back := reflect.New(reflect.TypeOf(tc.result))
			if err := codec.Unmarshal(res, back.Interface()); err != nil || !reflect.DeepEqual(back.Elem().Interface(), tc.result) {
				t.Fatalf("result decodes to %v, %v, want %v", back.Elem().Interface(), err, tc.result)
			}
		})
	}
}

func TestAppendReplyCannotEncode(t *testing.T) {
	for _, v := range []any{func() {}, make(chan bool), complex64(1), map[string]any{"f": func() {}}} {
		if _, err := wire.AppendReply(nil, 0, v); !errors.Is(err, bus.ErrEncode) {
			t.Errorf("AppendReply(%T) err = %v, want ErrEncode", v, err)
		}
	}
}

func TestErrorReplyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		re   bus.RemoteError
	}{
		{"zero", bus.RemoteError{}},
		{"message", bus.RemoteError{Type: "*errors.errorString", Message: "boom", Worker: "w-1"}},
		{"all fields", bus.RemoteError{Type: "*bus.PanicError", Message: "panic: x", Worker: "w-1", Function: "f",
			Stack: "goroutine 1 [running]:\nmain.main()", Sentinels: []string{"bus.ErrPanic", "bus.ErrClosed"}}},
		{"long strings", bus.RemoteError{Type: strings.Repeat("T", 300), Message: strings.Repeat("m", 70000), Worker: "w",
			Stack: strings.Repeat("s", 65536), Sentinels: []string{strings.Repeat("n", 256)}}},
		{"unicode", bus.RemoteError{Message: "ça a échoué ✗", Worker: "w"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := wire.AppendErrorReply([]byte("keep"), 0, &tc.re)
			if !bytes.HasPrefix(data, []byte("keep")) {
				t.Fatal("AppendErrorReply lost dst")
			}
			_, res, re, err := wire.DecodeReply(data[4:])
			if err != nil || res != nil || re == nil {
				t.Fatalf("DecodeReply = %v, %v, %v, want a remote error", res, re, err)
			}
			if !reflect.DeepEqual(*re, tc.re) {
				t.Fatalf("remote error = %+v, want %+v", *re, tc.re)
			}
		})
	}
}

func TestDecodeReplyTruncated(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"one-byte result", mustReply(t, 7)},
		{"nil result", mustReply(t, nil)},
		{"error", wire.AppendErrorReply(nil, 0, &bus.RemoteError{Type: "T", Message: strings.Repeat("m", 300), Worker: "w", Sentinels: []string{"bus.ErrPanic"}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for n := range len(tc.data) {
				_, res, re, err := wire.DecodeReply(tc.data[:n:n])
				if !errors.Is(err, bus.ErrBadPayload) || res != nil || re != nil {
					t.Fatalf("DecodeReply of the first %d of %d bytes = %v, %v, %v, want ErrBadPayload", n, len(tc.data), res, re, err)
				}
			}
		})
	}
}

func TestDecodeReplyGarbage(t *testing.T) {
	v := byte(wire.ProtocolVersion)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"nil", nil, "empty message"},
		{"text", []byte("hello"), "not a processional envelope"},
		{"msgpack string", mustMarshal(t, "ok"), "not a processional envelope"},
		{"2 fields", []byte{0x92, v, 0}, "want 4"},
		{"5 fields", []byte{0x95, v, 0, 9, 1, 2}, "want 4"},
		{"call as reply", appendCall(t, &wire.Call{Master: "m", Function: "f"}, 1), "want 4"},
		{"status 2, an item", []byte{0x94, v, 2, 9, 1}, "a stream's item where a call's reply was due"},
		{"status 3, a progress report", []byte{0x94, v, 3, 9, 1}, "a progress report where a call's reply was due"},
		{"status 4", []byte{0x94, v, 4, 9, 1}, "unknown status 4"},
		{"status 255", []byte{0x94, v, 0xcc, 0xff, 9, 1}, "unknown status 255"},
		{"status is a string", []byte{0x94, v, 0xa1, '0', 9, 1}, "want an unsigned integer"},
		{"status missing", []byte{0x94, v}, "truncated"},
		{"id missing", []byte{0x94, v, 0}, "truncated"},
		{"id is a string", []byte{0x94, v, 0, 0xa1, '9', 1}, "want an unsigned integer"},
		{"result missing", []byte{0x94, v, 0, 9}, "no result"},
		{"error missing", []byte{0x94, v, 1, 9}, "error envelope"},
		{"error is an int", []byte{0x94, v, 1, 9, 7}, "error envelope"},
		{"error is a string", []byte{0x94, v, 1, 9, 0xa1, 'x'}, "error envelope"},
		{"error fields of the wrong type", append([]byte{0x94, v, 1, 9}, mustMarshal(t, map[string]any{"message": 12})...), "error envelope"},
		{"error map cut short", append([]byte{0x94, v, 1, 9}, 0x82, 0xa4, 't', 'y', 'p', 'e'), "error envelope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, res, re, err := wire.DecodeReply(tc.data)
			if !errors.Is(err, bus.ErrBadPayload) || res != nil || re != nil {
				t.Fatalf("DecodeReply(% x) = %v, %v, %v, want ErrBadPayload", tc.data, res, re, err)
			}
			wantSubstrings(t, "error", err.Error(), tc.want)
		})
	}
}

// A stream's item and credit round-trip, and a reply decoder that wants
// a call's reply refuses an item.
func TestStreamEnvelopes(t *testing.T) {
	item, err := wire.AppendItemWith(nil, 42, []int{1, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, status, raw, re, err := wire.DecodeReplyStatus(item)
	if err != nil || id != 42 || status != wire.StatusItem || re != nil || raw == nil {
		t.Fatalf("DecodeReplyStatus(item) = %d, %d, %x, %v, %v", id, status, raw, re, err)
	}
	if _, _, _, err := wire.DecodeReply(item); !errors.Is(err, bus.ErrBadPayload) {
		t.Fatalf("DecodeReply(item) = %v, want ErrBadPayload", err)
	}
	credit, err := wire.AppendCredit(nil, "m", 42, 7, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var c wire.Call
	if err := wire.DecodeCall(credit, &c); err != nil || c.Kind != wire.KindCredit || c.ID != 42 || c.Master != "m" {
		t.Fatalf("DecodeCall(credit) = %+v, %v", c, err)
	}
	if items, bytes, err := wire.DecodeCredit(c.Arg); err != nil || items != 7 || bytes != 1<<20 {
		t.Fatalf("DecodeCredit = %d, %d, %v; want 7, 1 MiB", items, bytes, err)
	}
	if _, _, err := wire.DecodeCredit([]byte{0xa1, 'x'}); !errors.Is(err, bus.ErrBadPayload) {
		t.Fatalf("DecodeCredit(a string) = %v, want ErrBadPayload", err)
	}
}
