package codec_test

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
)

// versioned stands for a struct that gained a field in a newer binary.
type (
	oldPoint struct{ X, Y int }
	newPoint struct {
		X, Y int
		Z    int `msgpack:"z,omitempty"`
	}
)

func TestCodecRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"bool", true},
		{"int", -12345},
		{"int64 min", int64(math.MinInt64)},
		{"uint64 max", uint64(math.MaxUint64)},
		{"float", 3.25},
		{"string", "héllo"},
		{"long string", strings.Repeat("x", 1<<17)},
		{"bytes", []byte{0, 1, 2, 255}},
		{"empty bytes", []byte{}},
		{"slice", []string{"a", "", "c"}},
		{"map", map[string]int{"a": 1, "b": 2}},
		{"struct", point{1, 2, "p"}},
		{"pointer", &point{3, 4, "q"}},
		{"nested", shape{Name: "s", Points: []point{{1, 1, ""}}, Next: &shape{Name: "n"}}},
		{"duration", 5 * time.Second},
		{"array", [3]int{1, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := codec.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(reflect.TypeOf(tc.v))
			if err := codec.Unmarshal(data, back.Interface()); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Elem().Interface(), tc.v) {
				t.Fatalf("round trip = %#v, want %#v", back.Elem().Interface(), tc.v)
			}
			app, err := codec.AppendValue([]byte("pre"), tc.v)
			if err != nil || !bytes.HasPrefix(app, []byte("pre")) || len(app) != 3+len(data) {
				t.Fatalf("AppendValue = %q…, %v, want the prefix and as many bytes as Marshal", app[:min(len(app), 8)], err)
			}
			back = reflect.New(reflect.TypeOf(tc.v))
			if err := codec.Unmarshal(app[3:], back.Interface()); err != nil || !reflect.DeepEqual(back.Elem().Interface(), tc.v) {
				t.Fatalf("AppendValue's value decodes to %#v, %v", back.Elem().Interface(), err)
			}
		})
	}
}

func TestCodecStructsEvolve(t *testing.T) {
	// A struct travels as a map keyed by field name: a binary with one more
	// field still understands one without, and the other way round.
	var n newPoint
	if err := codec.Unmarshal(mustMarshal(t, oldPoint{1, 2}), &n); err != nil || n != (newPoint{1, 2, 0}) {
		t.Errorf("old into new = %+v, %v", n, err)
	}
	var o oldPoint
	if err := codec.Unmarshal(mustMarshal(t, newPoint{1, 2, 3}), &o); err != nil || o != (oldPoint{1, 2}) {
		t.Errorf("new into old = %+v, %v", o, err)
	}
	var m map[string]any
	if err := codec.Unmarshal(mustMarshal(t, point{1, 2, "l"}), &m); err != nil || m["label"] != "l" {
		t.Errorf("the msgpack tag does not rename the field: %v, %v", m, err)
	}
}

type panicEncoder struct{}

func (panicEncoder) EncodeMsgpack(*msgpack.Encoder) error { panic("encoder panics") }

func TestMarshalErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
		subs []string
	}{
		{"func", func() {}, []string{"func()"}},
		{"chan", make(chan int), []string{"chan int"}},
		{"complex", complex(1, 2), []string{"complex128"}},
		{"func in a map", map[string]any{"f": func() {}}, []string{"map[string]interface {}"}},
		{"pointer-receiver encoder by value", ptrEncoded{}, []string{"codec_test.ptrEncoded", "non-addressable"}},
		{"encoder that panics", panicEncoder{}, []string{"codec_test.panicEncoder", "encoder panics"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := codec.Marshal(tc.v)
			if !errors.Is(err, bus.ErrEncode) {
				t.Fatalf("Marshal(%T) = % x, %v, want registry.ErrEncode", tc.v, data, err)
			}
			wantSubstrings(t, "error", err.Error(), tc.subs...)
		})
	}
	// The encoder that panicked goes back to its pool: the next values
	// encode as usual.
	for range 10 {
		if data, err := codec.Marshal([]int{1, 2}); err != nil || !bytes.Equal(data, []byte{0x92, 1, 2}) {
			t.Fatalf("Marshal after a panic = % x, %v", data, err)
		}
	}
}

func TestUnmarshalErrors(t *testing.T) {
	var i int
	var s string
	var p point
	var xs []int
	for _, tc := range []struct {
		name string
		data []byte
		into any
	}{
		{"empty", nil, &i},
		{"string into int", mustMarshal(t, "x"), &i},
		{"int into string", mustMarshal(t, 7), &s},
		{"string into struct", mustMarshal(t, "x"), &p},
		{"truncated string", mustMarshal(t, "hello")[:3], &s},
		{"truncated array", mustMarshal(t, []int{1, 2, 3})[:2], &xs},
		{"reserved code", []byte{0xc1}, &i},
		// Headers that announce more than the message holds: msgpack
		// v5.4.1 would allocate for them before reading (see valueLen in codec.go).
		{"huge array header", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, &xs},
		{"huge array header into structs", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, new([]shape)},
		{"huge array header into any", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, new(any)},
		{"huge array header nested", []byte{0x92, 0x90, 0xdd, 0x7f, 0xff, 0xff, 0xff, 0x01}, new([][]int)},
		{"array16 longer than the message", append([]byte{0xdc, 0x03, 0xe8}, make([]byte, 999)...), &xs},
		{"huge map header", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, new(map[string]int)},
		{"map16 longer than the message", append([]byte{0xde, 0x01, 0x00}, make([]byte, 300)...), new(map[int]int)},
		{"huge string header", []byte{0xdb, 0xff, 0xff, 0xff, 0xff}, &s},
		{"huge bin header", []byte{0xc6, 0xff, 0xff, 0xff, 0xff}, new([]byte)},
		{"huge ext header", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}, new(any)},
		{"truncated length", []byte{0xdd, 0xff}, &xs},
		{"truncated float", []byte{0xcb, 0, 0}, new(float64)},
		{"not a pointer", mustMarshal(t, 7), i},
		{"nil", mustMarshal(t, 7), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := codec.Unmarshal(tc.data, tc.into); err == nil {
				t.Fatalf("Unmarshal(% x) into %T = nil, want an error", tc.data, tc.into)
			}
		})
	}
}

// everyEncoding holds a value of every msgpack format family and width.
type everyEncoding struct {
	Nil                           *int
	True, False                   bool
	PosFix, NegFix                int
	U8, U16, U32, U64             uint64
	I8, I16, I32, I64             int64
	F32                           float32
	F64                           float64
	Str5, Str8, Str16, Str32      string
	Bin8, Bin16, Bin32            []byte
	Arr4, Arr16, Arr32            []int16
	Map2, Map16, Map32            map[int32]bool
	TimeSec, TimeNano, TimeFarOut time.Time
	Any                           any
}

// TestUnmarshalAcceptsEveryEncoding checks that the length check in front
// of the decoder refuses nothing the encoder writes.
func TestUnmarshalAcceptsEveryEncoding(t *testing.T) {
	mk := func(n int) map[int32]bool {
		m := make(map[int32]bool, n)
		for i := range n {
			m[int32(i)] = i%2 == 0
		}
		return m
	}
	v := everyEncoding{
		True: true, PosFix: 5, NegFix: -5,
		U8: 200, U16: 60000, U32: 1 << 31, U64: 1 << 63,
		I8: -100, I16: -30000, I32: -1 << 30, I64: -1 << 62,
		F32: 1.5, F64: math.Pi,
		Str5: "hello", Str8: strings.Repeat("a", 200), Str16: strings.Repeat("b", 60000), Str32: strings.Repeat("c", 70000),
		Bin8: make([]byte, 200), Bin16: make([]byte, 60000), Bin32: make([]byte, 70000),
		Arr4: make([]int16, 4), Arr16: make([]int16, 60000), Arr32: make([]int16, 70000),
		Map2: mk(2), Map16: mk(300), Map32: mk(70000),
		TimeSec:    time.Unix(1700000000, 0),
		TimeNano:   time.Unix(1700000000, 123),
		TimeFarOut: time.Unix(1<<40, 5),
		Any:        []any{nil, "x", map[string]any{"k": []any{1.5, int8(-1)}}},
	}
	data := mustMarshal(t, v)
	var back everyEncoding
	if err := codec.Unmarshal(data, &back); err != nil {
		t.Fatalf("Unmarshal of the encoding of every format: %v", err)
	}
	for _, pair := range [][2]time.Time{{back.TimeSec, v.TimeSec}, {back.TimeNano, v.TimeNano}, {back.TimeFarOut, v.TimeFarOut}} {
		if !pair[0].Equal(pair[1]) {
			t.Errorf("time = %v, want %v", pair[0], pair[1])
		}
	}
	back.TimeSec, back.TimeNano, back.TimeFarOut = v.TimeSec, v.TimeNano, v.TimeFarOut
	if !reflect.DeepEqual(back, v) {
		t.Error("round trip of every format differs")
	}
	// A value followed by other bytes decodes as before: the envelope's
	// argument is the end of the message, and the check leaves that alone.
	var n int
	if err := codec.Unmarshal([]byte{0x07, 0xc1, 0xc1}, &n); err != nil || n != 7 {
		t.Errorf("Unmarshal of a value with bytes after it = %d, %v", n, err)
	}
}

// TestUnmarshalNeverPanics decodes random bytes into assorted types.
func TestUnmarshalNeverPanics(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	seeds := [][]byte{
		mustMarshal(t, shape{Name: "s", Points: []point{{1, 2, "x"}}, Tags: map[string]int{"a": 1}, Next: &shape{}}),
		mustMarshal(t, map[string]any{"a": []any{1, "b", nil, 2.5}}),
		mustMarshal(t, &bus.RemoteError{Message: "m", Sentinels: []string{"x"}}),
	}
	targets := []func() any{
		func() any { return new(int) }, func() any { return new(string) }, func() any { return new(shape) },
		func() any { return new(any) }, func() any { return new(map[string][]point) }, func() any { return new(bus.RemoteError) },
		func() any { return new([3]int) }, func() any { return new(*point) }, func() any { return new(time.Time) },
	}
	for range 20000 {
		data := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		for range 1 + rng.IntN(4) {
			data[rng.IntN(len(data))] = byte(rng.UintN(256))
		}
		data = data[:rng.IntN(len(data)+1)]
		codec.Unmarshal(data, targets[rng.IntN(len(targets))]()) // must not panic
	}
}
