package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
)

func TestVersion(t *testing.T) {
	if wire.Version() != wire.ProtocolVersion {
		t.Fatalf("Version() = %d, want ProtocolVersion %d (no link-time override in tests)", wire.Version(), wire.ProtocolVersion)
	}
}

func TestKindString(t *testing.T) {
	for _, tc := range []struct {
		k    wire.Kind
		want string
	}{
		{wire.KindCall, "call"},
		{wire.KindThread, "thread"},
		{wire.KindCancel, "cancel"},
		{wire.KindClose, "close"},
		{wire.KindHeartbeat, "heartbeat"},
		{wire.KindDetach, "detach"},
		{wire.KindPersist, "persist"},
		{wire.KindStream, "stream"},
		{wire.KindCredit, "credit"},
		{wire.Kind(9), "kind(9)"},
		{wire.Kind(255), "kind(255)"},
	} {
		if got := tc.k.String(); got != tc.want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(tc.k), got, tc.want)
		}
	}
}

var kinds = []wire.Kind{wire.KindCall, wire.KindThread, wire.KindCancel, wire.KindClose, wire.KindHeartbeat, wire.KindDetach, wire.KindPersist, wire.KindStream, wire.KindCredit}

// ids cross every msgpack integer width.
var ids = []uint64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64, math.MaxUint64 - 1, math.MaxUint64}

// strLens cross every msgpack string width.
var strLens = []int{0, 1, 31, 32, 255, 256, 65535, 65536, 70000}

func appendCall(t testing.TB, c *wire.Call, arg any) []byte {
	t.Helper()
	data, err := wire.AppendCall(nil, c, arg)
	if err != nil {
		t.Fatalf("AppendCall(%+v, %v): %v", c, arg, err)
	}
	return data
}

// sameCall compares the header fields of two calls and their argument
// bytes.
func sameCall(a, b *wire.Call) bool {
	return a.Kind == b.Kind && a.Master == b.Master && a.ID == b.ID && a.Function == b.Function &&
		a.Timeout == b.Timeout && a.ArgType == b.ArgType && bytes.Equal(a.Arg, b.Arg)
}

func TestCallRoundTrip(t *testing.T) {
	type tcase struct {
		name string
		call wire.Call
		arg  any
	}
	var cases []tcase
	for _, k := range kinds {
		for _, id := range ids {
			cases = append(cases, tcase{k.String() + "/id", wire.Call{Kind: k, Master: "m-1", ID: id, Function: "f", ArgType: "int"}, int(id % 1000)})
		}
		for _, n := range strLens {
			s := strings.Repeat("s", n)
			cases = append(cases,
				tcase{k.String() + "/master", wire.Call{Kind: k, Master: s, ID: 9, Function: "f"}, "x"},
				tcase{k.String() + "/function", wire.Call{Kind: k, Master: "m", ID: 9, Function: s}, "x"},
				tcase{k.String() + "/argType", wire.Call{Kind: k, Master: "m", ID: 9, Function: "f", ArgType: s}, s},
			)
		}
	}
	for _, d := range []time.Duration{0, 1, time.Millisecond, 5 * time.Second, 365 * 24 * time.Hour, math.MaxInt64} {
		cases = append(cases, tcase{"timeout", wire.Call{Kind: wire.KindCall, Master: "m", ID: 1, Function: "f", Timeout: d}, nil})
	}
	for _, arg := range []any{nil, true, 0, -1, math.MaxInt64, 3.5, "", "héllo", []byte{0, 1, 2}, []int{1, 2, 3},
		map[string]any{"a": int8(1)}, point{1, 2, "p"}, &point{3, 4, "q"}, make([]byte, 1<<20)} {
		cases = append(cases, tcase{"arg", wire.Call{Kind: wire.KindThread, Master: "m", ID: 1, Function: "f", ArgType: fmt.Sprintf("%T", arg)}, arg})
	}
	for _, tc := range cases {
		data := appendCall(t, &tc.call, tc.arg)
		var got wire.Call
		if err := wire.DecodeCall(data, &got); err != nil {
			t.Fatalf("%s: DecodeCall(AppendCall(%v)): %v", tc.name, tc.call.ID, err)
		}
		want := tc.call
		want.Arg = mustMarshal(t, tc.arg)
		if !sameCall(&got, &want) {
			t.Fatalf("%s: DecodeCall = {%v %q… %d %q… %v %q… %d arg bytes}, want {%v %q… %d %q… %v %q… %d arg bytes}", tc.name,
				got.Kind, trunc(got.Master), got.ID, trunc(got.Function), got.Timeout, trunc(got.ArgType), len(got.Arg),
				want.Kind, trunc(want.Master), want.ID, trunc(want.Function), want.Timeout, trunc(want.ArgType), len(want.Arg))
		}
		if tc.arg != nil {
			back := reflect.New(reflect.TypeOf(tc.arg))
			if err := codec.Unmarshal(got.Arg, back.Interface()); err != nil {
				t.Fatalf("%s: the argument does not decode: %v", tc.name, err)
			}
			if !reflect.DeepEqual(back.Elem().Interface(), tc.arg) {
				t.Fatalf("%s: argument = %v, want %v", tc.name, back.Elem().Interface(), tc.arg)
			}
		}
	}
}

func trunc(s string) string {
	if len(s) > 20 {
		return s[:20]
	}
	return s
}

func TestAppendCallDetails(t *testing.T) {
	t.Run("appends to dst", func(t *testing.T) {
		prefix := []byte("prefix")
		c := wire.Call{Kind: wire.KindCall, Master: "m", ID: 3, Function: "f"}
		data, err := wire.AppendCall(append([]byte(nil), prefix...), &c, 1)
		if err != nil || !bytes.HasPrefix(data, prefix) {
			t.Fatalf("AppendCall = %q, %v: lost the prefix", data, err)
		}
		var got wire.Call
		if err := wire.DecodeCall(data[len(prefix):], &got); err != nil || got.ID != 3 {
			t.Fatalf("DecodeCall after the prefix = %+v, %v", got, err)
		}
	})
	t.Run("ignores c.Arg", func(t *testing.T) {
		c := wire.Call{Kind: wire.KindCall, Master: "m", ID: 3, Function: "f", Arg: []byte{0xc1, 0xc1}}
		var got wire.Call
		if err := wire.DecodeCall(appendCall(t, &c, "real"), &got); err != nil || !bytes.Equal(got.Arg, mustMarshal(t, "real")) {
			t.Fatalf("DecodeCall = %+v, %v", got, err)
		}
	})
	t.Run("negative timeout is none", func(t *testing.T) {
		c := wire.Call{Kind: wire.KindCall, Master: "m", ID: 3, Function: "f", Timeout: -time.Second}
		var got wire.Call
		if err := wire.DecodeCall(appendCall(t, &c, 1), &got); err != nil || got.Timeout != 0 {
			t.Fatalf("DecodeCall = %+v, %v, want Timeout 0", got, err)
		}
	})
	t.Run("timeout beyond MaxInt64 saturates", func(t *testing.T) {
		data := appendCall(t, &wire.Call{Kind: wire.KindCall, Master: "m", ID: 3, Function: "f", Timeout: 7}, 1)
		// The timeout is the byte after the function "f" (0xa1 'f').
		i := bytes.Index(data, []byte{0xa1, 'f', 0x07})
		if i < 0 {
			t.Fatalf("timeout not found in % x", data)
		}
		big := append(append(append([]byte(nil), data[:i+2]...), 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), data[i+3:]...)
		var got wire.Call
		if err := wire.DecodeCall(big, &got); err != nil || got.Timeout != math.MaxInt64 {
			t.Fatalf("DecodeCall = %v, %v, want Timeout MaxInt64", got.Timeout, err)
		}
	})
	t.Run("argument that cannot be encoded", func(t *testing.T) {
		for _, arg := range []any{func() {}, make(chan int), complex(1, 2), struct{ F func() }{func() {}}} {
			_, err := wire.AppendCall(nil, &wire.Call{Master: "m", Function: "f"}, arg)
			if !errors.Is(err, bus.ErrEncode) {
				t.Errorf("AppendCall(%T) err = %v, want ErrEncode", arg, err)
			} else if !strings.Contains(err.Error(), reflect.TypeOf(arg).String()) {
				t.Errorf("AppendCall(%T) err = %v, does not name the type", arg, err)
			}
		}
	})
	t.Run("argument aliases the message", func(t *testing.T) {
		data := appendCall(t, &wire.Call{Master: "m", Function: "f"}, "abc")
		var got wire.Call
		if err := wire.DecodeCall(data, &got); err != nil {
			t.Fatal(err)
		}
		if &got.Arg[len(got.Arg)-1] != &data[len(data)-1] {
			t.Error("c.Arg is a copy, documented to alias data")
		}
	})
}

// truncations of a call whose argument is one byte: every proper prefix
// lacks at least the argument.
func TestDecodeCallTruncated(t *testing.T) {
	for _, tc := range []struct {
		name string
		call wire.Call
	}{
		{"short strings", wire.Call{Kind: wire.KindCall, Master: "m-1", ID: 1, Function: "f", ArgType: "int"}},
		{"str8 and str16", wire.Call{Kind: wire.KindThread, Master: strings.Repeat("m", 40), ID: 300, Function: strings.Repeat("f", 300), Timeout: time.Hour, ArgType: "int"}},
		{"str32 and uint64", wire.Call{Kind: wire.KindCancel, Master: "m", ID: math.MaxUint64, Function: "f", Timeout: math.MaxInt64, ArgType: strings.Repeat("t", 70000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := appendCall(t, &tc.call, 7)
			if data[len(data)-1] != 7 {
				t.Fatalf("argument 7 is not one byte: % x", data[len(data)-4:])
			}
			for n := range len(data) {
				var c wire.Call
				err := wire.DecodeCall(data[:n:n], &c)
				if !errors.Is(err, bus.ErrBadPayload) {
					t.Fatalf("DecodeCall of the first %d of %d bytes: %v, want ErrBadPayload", n, len(data), err)
				}
			}
		})
	}
}

// callHeader builds a call envelope field by field, for malformed ones.
func callHeader(fields byte, parts ...[]byte) []byte {
	b := []byte{0x90 | fields}
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func fixstr(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }

func TestDecodeCallGarbage(t *testing.T) {
	v := []byte{wire.ProtocolVersion}
	okHeader := [][]byte{v, {0}, fixstr("m"), {1}, fixstr("f"), {0}, fixstr("int"), {0}}
	with := func(i int, field []byte) [][]byte {
		h := append([][]byte(nil), okHeader...)
		h[i] = field
		return append(h, []byte{7})
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"nil", nil, "empty message"},
		{"empty", []byte{}, "empty message"},
		{"positive fixint", []byte{0x01}, "not a processional envelope"},
		{"text", []byte("hello"), "not a processional envelope"},
		{"msgpack nil", []byte{0xc0}, "not a processional envelope"},
		{"fixmap", []byte{0x88, 0x01}, "not a processional envelope"},
		{"array16", []byte{0xdc, 0x00, 0x08, 0x01}, "not a processional envelope"},
		{"JSON", []byte(`[1,0,"m",1,"f",0,"int",7]`), "not a processional envelope"},
		{"array header only", []byte{0x98}, "envelope version"},
		{"version is a string", callHeader(9, fixstr("1")), "envelope version"},
		{"version is negative", callHeader(9, []byte{0xff}), "envelope version"},
		{"8 fields", callHeader(8, append(okHeader, []byte{7})...), "want 9"},
		{"10 fields", callHeader(10, append(okHeader, []byte{7})...), "want 9"},
		{"reply as call", mustReply(t, 1), "want 9"},
		{"pid is a string", callHeader(9, with(7, fixstr("1"))...), "want an unsigned integer"},
		{"pid over 32 bits", callHeader(9, with(7, []byte{0xcf, 0, 0, 0, 1, 0, 0, 0, 0})...), "pid"},
		{"kind 9", callHeader(9, with(1, []byte{9})...), "unknown kind 9"},
		{"kind 255", callHeader(9, with(1, []byte{0xcc, 0xff})...), "unknown kind 255"},
		{"kind 2^40", callHeader(9, with(1, []byte{0xcf, 0, 0, 1, 0, 0, 0, 0, 0})...), "unknown kind"},
		{"kind is nil", callHeader(9, with(1, []byte{0xc0})...), "want an unsigned integer"},
		{"master is an int", callHeader(9, with(2, []byte{0x01})...), "want a string"},
		{"master is bin", callHeader(9, with(2, []byte{0xc4, 0x01, 'm'})...), "want a string"},
		{"master str8 without length", callHeader(9, v, []byte{0}, []byte{0xd9}), "want a string"},
		{"id is negative", callHeader(9, with(3, []byte{0xd0, 0x80})...), "want an unsigned integer"},
		{"id is a float", callHeader(9, with(3, []byte{0xcb, 0, 0, 0, 0, 0, 0, 0, 0})...), "want an unsigned integer"},
		{"function is nil", callHeader(9, with(4, []byte{0xc0})...), "want a string"},
		{"timeout is a string", callHeader(9, with(5, fixstr("1s"))...), "want an unsigned integer"},
		{"argType is an array", callHeader(9, with(6, []byte{0x90})...), "want a string"},
		{"no argument", callHeader(9, okHeader...), "no argument"},
		{"string longer than the message", callHeader(9, v, []byte{0}, []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'm'}), "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c wire.Call
			err := wire.DecodeCall(tc.data, &c)
			if !errors.Is(err, bus.ErrBadPayload) {
				t.Fatalf("DecodeCall(% x) = %v, want ErrBadPayload", tc.data, err)
			}
			if errors.Is(err, bus.ErrProtocolVersion) {
				t.Errorf("DecodeCall(% x) = %v, also ErrProtocolVersion", tc.data, err)
			}
			wantSubstrings(t, "error", err.Error(), tc.want)
		})
	}
}

// withVersion rewrites the version of an envelope, which AppendCall and
// AppendReply write as a positive fixint in the second byte.
func withVersion(t *testing.T, data []byte, version []byte) []byte {
	t.Helper()
	if data[1] != wire.ProtocolVersion {
		t.Fatalf("byte 1 of % x is not the version", data[:4])
	}
	return append(append([]byte{data[0]}, version...), data[2:]...)
}

func TestDecodeProtocolVersion(t *testing.T) {
	call := appendCall(t, &wire.Call{Kind: wire.KindCall, Master: "m", ID: 1, Function: "f", ArgType: "int"}, 1)
	reply := mustReply(t, "ok")
	errReply := wire.AppendErrorReply(nil, 0, &bus.RemoteError{Worker: "w", Message: "m"})
	for _, tc := range []struct {
		name    string
		version []byte
		want    string
	}{
		{"0", []byte{0}, "protocol 0"},
		{"2, the version before references carried secrets", []byte{2}, "protocol 2"},
		{"3, the version before streams", []byte{3}, "protocol 3"},
		{"4, the version before epochs named their process", []byte{4}, "protocol 4"},
		{"5, the version before batches", []byte{5}, "protocol 5"},
		{"7", []byte{7}, "protocol 7"},
		{"127", []byte{0x7f}, "protocol 127"},
		{"uint8 255", []byte{0xcc, 0xff}, "protocol 255"},
		{"uint16", []byte{0xcd, 0x01, 0x00}, "protocol 256"},
		{"uint32", []byte{0xce, 0, 1, 0, 0}, "protocol 65536"},
		{"max uint64", []byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "protocol 18446744073709551615"},
		// The version that this binary speaks, in a longer encoding, is
		// not a mismatch.
		{"same version as uint16", []byte{0xcd, 0, wire.ProtocolVersion}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c wire.Call
			err := wire.DecodeCall(withVersion(t, call, tc.version), &c)
			if tc.want == "" {
				if err != nil || c.Function != "f" {
					t.Fatalf("DecodeCall = %+v, %v", c, err)
				}
			} else {
				if !errors.Is(err, bus.ErrProtocolVersion) || errors.Is(err, bus.ErrBadPayload) {
					t.Fatalf("DecodeCall = %v, want ErrProtocolVersion alone", err)
				}
				wantSubstrings(t, "error", err.Error(), tc.want, fmt.Sprintf("this binary speaks %d", wire.ProtocolVersion))
			}
			for _, r := range [][]byte{reply, errReply} {
				_, res, re, err := wire.DecodeReply(withVersion(t, r, tc.version))
				if tc.want == "" {
					if err != nil || (res == nil && re == nil) {
						t.Fatalf("DecodeReply = %v, %v, %v", res, re, err)
					}
					continue
				}
				if !errors.Is(err, bus.ErrProtocolVersion) || res != nil || re != nil {
					t.Fatalf("DecodeReply = %v, %v, %v, want ErrProtocolVersion", res, re, err)
				}
				wantSubstrings(t, "error", err.Error(), tc.want)
			}
		})
	}
	// The version is read before the field count: an envelope of another
	// version may have other fields, and must still say "version".
	t.Run("other version, other layout", func(t *testing.T) {
		for _, data := range [][]byte{
			{0x92, 0x07, 0x00},
			{0x9f, 0x07},
			callHeader(12, []byte{9}, fixstr("anything")),
		} {
			var c wire.Call
			if err := wire.DecodeCall(data, &c); !errors.Is(err, bus.ErrProtocolVersion) {
				t.Errorf("DecodeCall(% x) = %v, want ErrProtocolVersion", data, err)
			}
			if _, _, _, err := wire.DecodeReply(data); !errors.Is(err, bus.ErrProtocolVersion) {
				t.Errorf("DecodeReply(% x) = %v, want ErrProtocolVersion", data, err)
			}
		}
	})
}

// TestDecodeRandom feeds random bytes, and random mutations of real
// envelopes, to both decoders: they must not panic, and must refuse with
// one of the two documented errors.
func TestDecodeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seeds := [][]byte{
		appendCall(t, &wire.Call{Kind: wire.KindThread, Master: "m-1", ID: 1 << 40, Function: strings.Repeat("f", 40), Timeout: time.Second, ArgType: "[]int"}, []int{1, 2, 3}),
		mustReply(t, map[string]int{"a": 1}),
		wire.AppendErrorReply(nil, 0, &bus.RemoteError{Type: "T", Message: "m", Worker: "w", Sentinels: []string{"x"}}),
	}
	for i := range 20000 {
		var data []byte
		if i%2 == 0 {
			data = make([]byte, rng.IntN(64))
			for j := range data {
				data[j] = byte(rng.UintN(256))
			}
			if len(data) > 0 && i%4 == 0 {
				data[0] = 0x90 | byte(rng.UintN(16)) // look like an envelope
				if len(data) > 1 {
					data[1] = wire.ProtocolVersion
				}
			}
		} else {
			data = append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
			for range 1 + rng.IntN(3) {
				data[rng.IntN(len(data))] = byte(rng.UintN(256))
			}
			data = data[:rng.IntN(len(data)+1)]
		}
		checkDecodeCall(t, data)
		checkDecodeReply(t, data)
	}
}

func wrapsDecodeError(err error) bool {
	return errors.Is(err, bus.ErrBadPayload) || errors.Is(err, bus.ErrProtocolVersion)
}

// checkDecodeCall decodes data; when it decodes, its re-encoding must
// decode to the same call, and re-encode to the same bytes.
func checkDecodeCall(t testing.TB, data []byte) {
	t.Helper()
	var c wire.Call
	err := wire.DecodeCall(data, &c)
	if err != nil {
		if !wrapsDecodeError(err) {
			t.Fatalf("DecodeCall(% x) = %v, wraps neither ErrBadPayload nor ErrProtocolVersion", data, err)
		}
		return
	}
	if c.Kind > wire.KindCredit || c.Timeout < 0 || len(c.Arg) == 0 {
		t.Fatalf("DecodeCall(% x) accepted %+v", data, c)
	}
	enc, err := wire.AppendCall(nil, &c, msgpack.RawMessage(c.Arg))
	if err != nil {
		t.Fatalf("AppendCall of a decoded call: %v", err)
	}
	var c2 wire.Call
	if err := wire.DecodeCall(enc, &c2); err != nil {
		t.Fatalf("DecodeCall of a re-encoded call (% x): %v", enc, err)
	}
	if !sameCall(&c, &c2) {
		t.Fatalf("re-encoded call decodes to %+v, want %+v", c2, c)
	}
	enc2, err := wire.AppendCall(nil, &c2, msgpack.RawMessage(c2.Arg))
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("re-encoding is not stable: % x then % x (%v)", enc, enc2, err)
	}
}

// checkDecodeReply decodes data; when it decodes, its re-encoding must
// decode to the same reply, and re-encode to the same bytes.
func checkDecodeReply(t testing.TB, data []byte) {
	t.Helper()
	id, res, re, err := wire.DecodeReply(data)
	switch {
	case err != nil:
		if !wrapsDecodeError(err) {
			t.Fatalf("DecodeReply(% x) = %v, wraps neither ErrBadPayload nor ErrProtocolVersion", data, err)
		}
		if res != nil || re != nil {
			t.Fatalf("DecodeReply(% x) = %v, %v with error %v", data, res, re, err)
		}
	case re != nil:
		if res != nil {
			t.Fatalf("DecodeReply(% x) = both a result and an error", data)
		}
		enc := wire.AppendErrorReply(nil, id, re)
		id2, res2, re2, err := wire.DecodeReply(enc)
		if err != nil || res2 != nil || re2 == nil || id2 != id {
			t.Fatalf("DecodeReply of a re-encoded error = %v, %v, %v", res2, re2, err)
		}
		if enc2 := wire.AppendErrorReply(nil, id, re2); !bytes.Equal(enc, enc2) {
			t.Fatalf("re-encoding is not stable: %+v then %+v", re, re2)
		}
	default:
		if len(res) == 0 {
			t.Fatalf("DecodeReply(% x) accepted a reply with no result", data)
		}
		enc, err := wire.AppendReply(nil, id, msgpack.RawMessage(res))
		if err != nil {
			t.Fatalf("AppendReply of a decoded result: %v", err)
		}
		_, res2, re2, err := wire.DecodeReply(enc)
		if err != nil || re2 != nil || !bytes.Equal(res, res2) {
			t.Fatalf("DecodeReply of a re-encoded result = % x, %v, %v, want % x", res2, re2, err, res)
		}
	}
}

func fuzzSeeds(f *testing.F) {
	for _, k := range kinds {
		for _, arg := range []any{nil, 1, "s", []int{1, 2}, point{1, 2, "p"}} {
			c := wire.Call{Kind: k, Master: "m-1", ID: 1, Function: "bus_test.sum", Timeout: time.Second, ArgType: "[]int"}
			f.Add(appendCall(f, &c, arg))
		}
	}
	f.Add(appendCall(f, &wire.Call{Master: strings.Repeat("m", 40), ID: math.MaxUint64, Function: strings.Repeat("f", 300), Timeout: math.MaxInt64}, 7))
	for _, v := range []any{nil, 1, "ok", []byte{1, 2}, map[string]int{"a": 1}, point{}} {
		f.Add(mustReply(f, v))
	}
	f.Add(wire.AppendErrorReply(nil, 0, &bus.RemoteError{}))
	f.Add(wire.AppendErrorReply(nil, 0, &bus.RemoteError{Type: "*bus.PanicError", Message: "panic: x", Worker: "w-1", Function: "f",
		Stack: "goroutine 1", Sentinels: []string{"bus.ErrPanic"}}))
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], 0xffffffff)
	f.Add([]byte{})
	f.Add([]byte{0x98, wire.ProtocolVersion + 1})
	f.Add(append([]byte{0x98, wire.ProtocolVersion, 0, 0xdb}, b[:]...))
}

func FuzzDecodeCall(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { checkDecodeCall(t, data) })
}

func FuzzDecodeReply(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { checkDecodeReply(t, data) })
}
