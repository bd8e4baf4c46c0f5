package codec_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
)

// bulkValues are slices of every type with a bulk codec, with their edge
// values, nil and empty.
func bulkValues() []any {
	return []any{
		[]float64{0, -1.5, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(-1)},
		[]float32{0, 1.25, -math.MaxFloat32},
		[]int64{0, -1, math.MinInt64, math.MaxInt64},
		[]int32{0, -1, math.MinInt32, math.MaxInt32},
		[]int16{0, -1, math.MinInt16, math.MaxInt16},
		[]int8{0, -1, math.MinInt8, math.MaxInt8},
		[]uint64{0, 1, math.MaxUint64},
		[]uint32{0, math.MaxUint32},
		[]uint16{0, math.MaxUint16},
		[]int{0, 1, -1, 127, 128, -32, -33, 255, 256, -129, 65536, -40000, math.MaxInt64, math.MinInt64},
		[]uint{0, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint64},
		[]bool{true, false, true},
		[]float64(nil), []int{}, []bool(nil),
	}
}

// The bulk codecs write what msgpack itself writes, and read it back.
func TestBulkRoundTrip(t *testing.T) {
	for _, v := range bulkValues() {
		data, err := codec.Marshal(v)
		if err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		back := reflect.New(reflect.TypeOf(v))
		if err := codec.Unmarshal(data, back.Interface()); err != nil {
			t.Fatalf("%T % x: %v", v, data, err)
		}
		if !reflect.DeepEqual(back.Elem().Interface(), v) {
			t.Fatalf("%T: %v back as %v", v, v, back.Elem().Interface())
		}
		// Any msgpack reader reads it: decoded as plain values, the
		// numbers are the same.
		var plain any
		if err := msgpack.Unmarshal(data, &plain); err != nil {
			t.Fatalf("%T: a plain msgpack reader: %v", v, err)
		}
	}
}

// Other writers' forms decode too: a []float64 written as ints and
// float32s, a []int64 in compact ints, inside a struct and a map.
func TestBulkReadsEveryForm(t *testing.T) {
	// [1, -2, 3.5 (float32), 4.25 (float64)]
	raw := []byte{0x94, 0x01, 0xfe, 0xca, 0x40, 0x60, 0x00, 0x00, 0xcb, 0x40, 0x11, 0, 0, 0, 0, 0, 0}
	var fs []float64
	if err := codec.Unmarshal(raw, &fs); err != nil || !reflect.DeepEqual(fs, []float64{1, -2, 3.5, 4.25}) {
		t.Fatalf("mixed forms into []float64: %v, %v", fs, err)
	}
	var is []int64
	if err := codec.Unmarshal([]byte{0x93, 0x01, 0xcc, 0xff, 0xd0, 0x80}, &is); err != nil || !reflect.DeepEqual(is, []int64{1, 255, -128}) {
		t.Fatalf("compact ints into []int64: %v, %v", is, err)
	}
	type S struct {
		X []float64
		M map[string][]int32
	}
	in := S{X: []float64{1, 2}, M: map[string][]int32{"a": {1, -2}}}
	data, err := codec.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out S
	if err := codec.Unmarshal(data, &out); err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("struct: %+v, %v", out, err)
	}
}

// Bad payloads are errors, never panics: a count past the bytes, an
// element that is not a number, an integer too big for its type.
func TestBulkBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		into any
	}{
		{"count past the bytes", []byte{0xdd, 0, 0, 0, 9, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0}, new([]float64)},
		{"float cut short", []byte{0x91, 0xcb, 0, 0, 0}, new([]float64)},
		{"a string among floats", []byte{0x92, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xa1, 'x'}, new([]float64)},
		{"int16 overflow", []byte{0x91, 0xcd, 0xff, 0xff}, new([]int16)},
		{"negative into uint", []byte{0x91, 0xff}, new([]uint32)},
	} {
		err := codec.Unmarshal(tc.raw, tc.into)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		t.Logf("%s: %v", tc.name, err)
	}
	if err := codec.Unmarshal([]byte{0x91, 0xcd, 0xff, 0xff}, new([]int16)); !errors.Is(err, bus.ErrBadPayload) {
		t.Errorf("overflow: %v, want ErrBadPayload", err)
	}
	if err := codec.Unmarshal([]byte{0x91, 0xff}, new([]uint32)); !errors.Is(err, bus.ErrBadPayload) || !strings.Contains(err.Error(), "-1 is negative") {
		t.Errorf("negative into uint32: %v, want ErrBadPayload naming -1", err)
	}
	var us []uint16
	if err := codec.Unmarshal([]byte{0x92, 0xd0, 0x05, 0x07}, &us); err != nil || !reflect.DeepEqual(us, []uint16{5, 7}) {
		t.Errorf("a positive int8 form into []uint16: %v, %v", us, err)
	}
}

// BenchmarkFloats measures a 10 MB []float64 both ways, in the standard
// form and in the packed form written for a process on this host.
func BenchmarkFloats(b *testing.B) {
	xs := make([]float64, 10<<20/8)
	for i := range xs {
		xs[i] = float64(i) / 3
	}
	for _, form := range []struct {
		name string
		ctx  any
	}{{"", nil}, {"packed/", onThisHost}} {
		data, err := codec.AppendValueWith(nil, xs, form.ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(form.name+"encode", func(b *testing.B) {
			b.SetBytes(int64(len(xs) * 8))
			buf := make([]byte, 0, len(data))
			for b.Loop() {
				buf, _ = codec.AppendValueWith(buf[:0], xs, form.ctx)
			}
		})
		b.Run(form.name+"decode", func(b *testing.B) {
			b.SetBytes(int64(len(xs) * 8))
			var out []float64
			for b.Loop() {
				out = out[:0]
				if err := codec.Unmarshal(data, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
		// A new slice each time, as a call's argument is.
		b.Run(form.name+"decode-new", func(b *testing.B) {
			b.SetBytes(int64(len(xs) * 8))
			for b.Loop() {
				var out []float64
				if err := codec.Unmarshal(data, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzBulk decodes any bytes into every slice type with a bulk codec:
// an error or a value, never a panic, and a value that encodes back.
func FuzzBulk(f *testing.F) {
	for _, v := range bulkValues() {
		data, _ := codec.Marshal(v)
		f.Add(data)
	}
	f.Add([]byte{0x93, 0x01, 0xcc, 0xff, 0xd0, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range bulkValues() {
			into := reflect.New(reflect.TypeOf(v))
			if codec.Unmarshal(data, into.Interface()) != nil {
				continue
			}
			if _, err := codec.Marshal(into.Elem().Interface()); err != nil {
				t.Fatalf("%T decoded from % x does not encode: %v", v, data, err)
			}
		}
	})
}
