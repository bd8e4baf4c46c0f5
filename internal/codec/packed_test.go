package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
)

// sameHost is the context of a call to a process on this host.
type sameHost struct{ pid int }

func (s sameHost) ShmReceiver() int { return s.pid }

var onThisHost = sameHost{pid: 1}

// packedValues are slices of every type with a packed form, long enough
// to pack, with their edge values.
func packedValues() []any {
	var out []any
	for _, v := range bulkValues() {
		rv := reflect.ValueOf(v)
		if rv.Len() == 0 || rv.Type().Elem().Kind() == reflect.Bool {
			continue
		}
		long := reflect.MakeSlice(rv.Type(), 0, codec.PackedMin+rv.Len())
		for long.Len() < codec.PackedMin {
			long = reflect.AppendSlice(long, rv)
		}
		out = append(out, long.Interface())
	}
	return out
}

// packed is the packed form of a slice of kind k of the bytes p.
func packed(k byte, p []byte) []byte {
	n := 1 + len(p)
	b := []byte{0xc9, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), byte(codec.PackedExtType), k}
	return append(b, p...)
}

// A slice of numbers for a process on this host is its bytes, and comes
// back the same through UnmarshalWith and through plain msgpack.
func TestPackedRoundTrip(t *testing.T) {
	for _, v := range packedValues() {
		data, err := codec.AppendValueWith(nil, v, onThisHost)
		if err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		if len(data) < 3 || data[0] != 0xc7 && data[0] != 0xc8 && data[0] != 0xc9 {
			t.Fatalf("%T: not an extension: % x", v, data[:min(len(data), 8)])
		}
		rv := reflect.ValueOf(v)
		size := int(rv.Type().Elem().Size())
		if k := rv.Type().Elem().Kind(); k == reflect.Int || k == reflect.Uint {
			size = 8
		}
		hdr := map[byte]int{0xc7: 3, 0xc8: 4, 0xc9: 6}[data[0]]
		if len(data) != hdr+1+size*rv.Len() || data[hdr-1] != byte(codec.PackedExtType) {
			t.Fatalf("%T: %d bytes for %d elements of %d bytes: % x", v, len(data), rv.Len(), size, data[:hdr+1])
		}
		for name, decode := range map[string]func([]byte, any) error{
			"UnmarshalWith": func(b []byte, p any) error { return codec.UnmarshalWith(b, p, nil) },
			"msgpack":       msgpack.Unmarshal,
		} {
			back := reflect.New(rv.Type())
			if err := decode(data, back.Interface()); err != nil {
				t.Fatalf("%T through %s: %v", v, name, err)
			}
			if !reflect.DeepEqual(back.Elem().Interface(), v) {
				t.Fatalf("%T through %s: %v back as %v", v, name, v, back.Elem().Interface())
			}
		}
	}
}

// The packed bytes are the elements in memory, little-endian.
func TestPackedLayout(t *testing.T) {
	xs := make([]float64, codec.PackedMin)
	for i := range xs {
		xs[i] = float64(i) + 0.5
	}
	data, err := codec.AppendValueWith(nil, xs, onThisHost)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xc7, byte(1 + 8*len(xs)), byte(codec.PackedExtType), 1}
	for _, x := range xs {
		want = binary.LittleEndian.AppendUint64(want, math.Float64bits(x))
	}
	if !bytes.Equal(data, want) {
		t.Fatalf("got  % x\nwant % x", data, want)
	}
}

// Without a receiver on this host, and below PackedMin, the standard form
// stays, byte for byte.
func TestPackedOnlyForThisHost(t *testing.T) {
	for _, v := range packedValues() {
		std, err := codec.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, ctx := range []any{nil, sameHost{pid: 0}, "not a receiver"} {
			data, err := codec.AppendValueWith(nil, v, ctx)
			if err != nil || !bytes.Equal(data, std) {
				t.Fatalf("%T with context %v: % x, %v; want the standard form", v, ctx, data[:min(len(data), 8)], err)
			}
		}
		short := reflect.ValueOf(v).Slice(0, codec.PackedMin-1).Interface()
		std, _ = codec.Marshal(short)
		if data, err := codec.AppendValueWith(nil, short, onThisHost); err != nil || !bytes.Equal(data, std) {
			t.Fatalf("%T of %d elements packed: % x, %v", v, codec.PackedMin-1, data, err)
		}
	}
}

// A packed slice decodes into another element type as its standard form
// would: widened, or refused naming the number that does not fit.
func TestPackedConverts(t *testing.T) {
	enc := func(v any) []byte {
		data, err := codec.AppendValueWith(nil, v, onThisHost)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	ints := make([]int32, 20)
	for i := range ints {
		ints[i] = int32(i*1000 - 5000)
	}
	var wide []int64
	if err := codec.Unmarshal(enc(ints), &wide); err != nil || len(wide) != 20 || wide[0] != -5000 || wide[19] != 14000 {
		t.Fatalf("packed int32 into []int64: %v, %v", wide, err)
	}
	var fs []float64
	if err := codec.Unmarshal(enc(ints), &fs); err != nil || fs[0] != -5000 {
		t.Fatalf("packed int32 into []float64: %v, %v", fs, err)
	}
	small := make([]int64, 20)
	small[7] = 300
	var i8 []int8
	if err := codec.Unmarshal(enc(small), &i8); !errors.Is(err, bus.ErrBadPayload) || !strings.Contains(err.Error(), "300 overflows int8") || !strings.Contains(err.Error(), "element 7") {
		t.Fatalf("packed 300 into []int8: %v, want ErrBadPayload naming 300 at element 7", err)
	}
	small[7] = -1
	var u32 []uint32
	if err := codec.Unmarshal(enc(small), &u32); !errors.Is(err, bus.ErrBadPayload) || !strings.Contains(err.Error(), "-1 is negative") {
		t.Fatalf("packed -1 into []uint32: %v, want ErrBadPayload naming -1", err)
	}
	var f32 []float32
	if err := codec.Unmarshal(enc(make([]float64, 20)), &f32); !errors.Is(err, bus.ErrBadPayload) {
		t.Fatalf("packed float64 into []float32: %v, want ErrBadPayload", err)
	}
	var is []int
	if err := codec.Unmarshal(enc(make([]float32, 20)), &is); !errors.Is(err, bus.ErrBadPayload) {
		t.Fatalf("packed float32 into []int: %v, want ErrBadPayload", err)
	}
	if err := codec.Unmarshal(enc(make([]float32, 20)), &fs); err != nil || len(fs) != 20 {
		t.Fatalf("packed float32 into []float64: %v, %v", fs, err)
	}
	big := []uint64{math.MaxUint64}
	big = append(big, make([]uint64, 19)...)
	if err := codec.Unmarshal(enc(big), &wide); !errors.Is(err, bus.ErrBadPayload) || !strings.Contains(err.Error(), "overflows int64") {
		t.Fatalf("packed MaxUint64 into []int64: %v, want an overflow", err)
	}
	var us []uint
	if err := codec.Unmarshal(enc(big), &us); err != nil || us[0] != math.MaxUint {
		t.Fatalf("packed uint64 into []uint: %v, %v", us, err)
	}
}

// Malformed packed slices are errors wrapping ErrBadPayload, never panics.
func TestPackedBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		raw        []byte
		into       any
	}{
		{"odd bytes for float64", "not a whole number", packed(1, make([]byte, 17)), new([]float64)},
		{"odd bytes for int32", "not a whole number", packed(4, make([]byte, 6)), new([]int64)},
		{"unknown element type", "unknown element type 99", packed(99, make([]byte, 8)), new([]float64)},
		{"element type 0", "unknown element type 0", packed(0, make([]byte, 8)), new([]int)},
		{"no element type", "no element type", []byte{0xc7, 0, byte(codec.PackedExtType)}, new([]float64)},
		{"another extension", "want extension 4, got extension 2", []byte{0xd4, 2, 1}, new([]float64)},
	} {
		for name, decode := range map[string]func([]byte, any) error{
			"UnmarshalWith": func(b []byte, p any) error { return codec.UnmarshalWith(b, p, nil) },
			"msgpack":       msgpack.Unmarshal,
		} {
			err := decode(tc.raw, tc.into)
			if !errors.Is(err, bus.ErrBadPayload) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s through %s: %v, want ErrBadPayload saying %q", tc.name, name, err, tc.want)
			}
		}
		if tc.name == "another extension" {
			continue // extension 2, not a packed slice
		}
		var v any
		if err := codec.Unmarshal(tc.raw, &v); !errors.Is(err, bus.ErrBadPayload) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s into an interface{}: %v, want ErrBadPayload saying %q", tc.name, err, tc.want)
		}
	}
	// A length past the data: UnmarshalWith refuses it before decoding,
	// the decoder when read from elsewhere.
	cut := packed(1, make([]byte, 64))[:40]
	if err := codec.Unmarshal(cut, new([]float64)); err == nil {
		t.Errorf("a length past the data: no error")
	}
	if err := msgpack.Unmarshal(cut, new([]float64)); !errors.Is(err, bus.ErrBadPayload) || !strings.Contains(err.Error(), "announced") {
		t.Errorf("a length past the data through msgpack: %v, want ErrBadPayload", err)
	}
}

// Packed slices decode inside structs, maps and slices of slices.
func TestPackedNested(t *testing.T) {
	type S struct {
		X  []float64
		M  map[string][]int32
		XX [][]uint16
		N  int
	}
	long := func(n int) []float64 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(i) * 1.5
		}
		return xs
	}
	in := S{
		X:  long(100),
		M:  map[string][]int32{"a": make([]int32, 40), "b": {1, 2}},
		XX: [][]uint16{make([]uint16, 17), nil, {3}, make([]uint16, 300)},
		N:  7,
	}
	in.M["a"][39] = -9
	in.XX[3][299] = 65535
	data, err := codec.AppendValueWith(nil, in, onThisHost)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte{byte(codec.PackedExtType), 1}) {
		t.Fatalf("nothing packed in % x", data[:32])
	}
	var out S
	if err := codec.UnmarshalWith(data, &out, nil); err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("%+v, %v", out, err)
	}
}

// Decoded into an interface{}, anywhere in a value, a packed slice gives
// what its standard form gives.
func TestPackedIntoInterface(t *testing.T) {
	type S struct {
		A any
		M map[string]any
		L []any
		P *any
	}
	for _, v := range packedValues() {
		in := S{A: v, M: map[string]any{"k": v, "n": 1}, L: []any{v, "x"}}
		in.P = new(any)
		*in.P = v
		for _, top := range []any{v, in, map[string]any{"a": []any{v}}} {
			std, err := codec.Marshal(top)
			if err != nil {
				t.Fatal(err)
			}
			pk, err := codec.AppendValueWith(nil, top, onThisHost)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(std, pk) {
				t.Fatalf("%T: nothing packed", v)
			}
			// Into a value of the same type as sent, and into an any.
			for _, into := range []func() any{
				func() any { return reflect.New(reflect.TypeOf(top)).Interface() },
				func() any { return new(any) },
			} {
				want, got := into(), into()
				if err := codec.Unmarshal(std, want); err != nil {
					t.Fatal(err)
				}
				if err := codec.Unmarshal(pk, got); err != nil {
					t.Fatalf("%T in %T packed: %v", v, top, err)
				}
				if !reflect.DeepEqual(want, got) {
					t.Fatalf("%T in %T: packed gives %#v, standard %#v", v, top, got, want)
				}
			}
		}
	}
}
