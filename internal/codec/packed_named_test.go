package codec_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
)

type (
	namedVec    []float64
	celsius     float64
	temps       []celsius
	namedInts   []int
	namedFlags  []bool
	quad        [4]float64
	namedHolder struct {
		V  namedVec
		T  temps
		Q  quad
		A  [1000]int32
		B  [20]bool
		M  map[string][24]int16
		P  *[17]uint
		Is namedInts
		F  namedFlags
	}
)

// mirror types, never given to CheckTravel: msgpack's own codec, for the
// bytes to match.
type (
	mVec     []float64
	mCelsius float64
	mTemps   []mCelsius
	mInts    []int
	mFlags   []bool
	mQuad    [4]float64
	mHolder  struct {
		V  mVec
		T  mTemps
		Q  mQuad
		A  [1000]mInt32
		B  [20]mBool
		M  map[string][24]mInt16
		P  *[17]mUint
		Is mInts
		F  mFlags
	}
	mInt32 int32
	mBool  bool
	mInt16 int16
	mUint  uint
)

func mirror(h namedHolder) mHolder {
	m := mHolder{V: mVec(h.V), Q: mQuad(h.Q), Is: mInts(h.Is), F: mFlags(h.F), M: map[string][24]mInt16{}, P: new([17]mUint)}
	for _, x := range h.T {
		m.T = append(m.T, mCelsius(x))
	}
	for i := range h.A {
		m.A[i] = mInt32(h.A[i])
	}
	for i := range h.B {
		m.B[i] = mBool(h.B[i])
	}
	for k, a := range h.M {
		var b [24]mInt16
		for i := range a {
			b[i] = mInt16(a[i])
		}
		m.M[k] = b
	}
	for i := range h.P {
		m.P[i] = mUint(h.P[i])
	}
	return m
}

// ownCodec encodes itself: its slices keep its codec.
type ownCodec float64

func (o ownCodec) MarshalMsgpack() ([]byte, error) {
	return msgpack.Marshal(string(rune('a' + int(o))))
}
func (o *ownCodec) UnmarshalMsgpack(b []byte) error {
	var s string
	if err := msgpack.Unmarshal(b, &s); err != nil || len(s) != 1 {
		return errors.New("not one letter")
	}
	*o = ownCodec(s[0] - 'a')
	return nil
}

func namedValue() namedHolder {
	h := namedHolder{
		V:  namedVec{1.5, -2, 3},
		T:  make(temps, 40),
		Q:  quad{1, 2, 3, 4},
		M:  map[string][24]int16{"a": {-1, 2, 32767}},
		P:  &[17]uint{16: 1 << 40},
		Is: namedInts{1, -300, 1 << 40},
		F:  namedFlags{true, false},
	}
	for i := range h.T {
		h.T[i] = celsius(i) - 20.25
	}
	for i := range h.A {
		h.A[i] = int32(i * -7919)
	}
	h.B[3] = true
	return h
}

// Named slices and arrays of numbers, met by CheckTravel, go in bulk: the
// standard form as msgpack writes it element by element, the packed form
// for this host, and back the same both ways.
func TestNamedBulk(t *testing.T) {
	in := namedValue()
	// The same value in types msgpack encodes element by element: the
	// bytes to match.
	own, err := msgpack.Marshal(mirror(in))
	if err != nil {
		t.Fatal(err)
	}
	if err := codec.CheckTravel(reflect.TypeOf(in)); err != nil {
		t.Fatal(err)
	}
	std, err := codec.Marshal(in)
	if err != nil || !bytes.Equal(own, std) {
		t.Fatalf("the standard form differs from msgpack's: %v", err)
	}
	pk, err := codec.AppendValueWith(nil, in, onThisHost)
	if err != nil {
		t.Fatal(err)
	}
	if len(pk) >= len(std) || !bytes.Contains(pk, []byte{byte(codec.PackedExtType), 4}) {
		t.Fatalf("the [1000]int32 is not packed: %d bytes packed, %d standard", len(pk), len(std))
	}
	for name, data := range map[string][]byte{"standard": std, "packed": pk} {
		var out namedHolder
		if err := codec.Unmarshal(data, &out); err != nil || !reflect.DeepEqual(in, out) {
			t.Fatalf("%s: %+v, %v", name, out, err)
		}
		var m any
		if err := codec.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s into an interface{}: %v", name, err)
		}
	}
	var std2 any
	var pk2 any
	if codec.Unmarshal(std, &std2) != nil || codec.Unmarshal(pk, &pk2) != nil || !reflect.DeepEqual(std2, pk2) {
		t.Fatalf("into an interface{}, packed and standard differ")
	}
}

// A type met first by UnmarshalWith reads packed slices too.
func TestNamedBulkFirstMetDecoding(t *testing.T) {
	type fresh struct {
		A [18]int16
		V []celsius
	}
	in := make([]int16, 18)
	in[17] = -3
	data, err := codec.AppendValueWith(nil, map[string]any{"A": in, "V": make([]float64, 30)}, onThisHost)
	if err != nil {
		t.Fatal(err)
	}
	var out fresh
	if err := codec.Unmarshal(data, &out); err != nil || out.A[17] != -3 || len(out.V) != 30 {
		t.Fatalf("%+v, %v", out, err)
	}
}

// A slice of a type that encodes itself keeps its codec.
func TestNamedBulkLeavesOwnCodecs(t *testing.T) {
	in := make([]ownCodec, 20)
	in[3] = 2
	if err := codec.CheckTravel(reflect.TypeOf(in)); err != nil {
		t.Fatal(err)
	}
	data, err := codec.AppendValueWith(nil, in, onThisHost)
	if err != nil || data[0] != 0xdc || data[3] != 0xa1 {
		t.Fatalf("% x, %v: want an array of one-letter strings", data[:min(len(data), 8)], err)
	}
	var out []ownCodec
	if err := codec.Unmarshal(data, &out); err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("%v, %v", out, err)
	}
}

// An array takes exactly its number of elements, in either form.
func TestNamedBulkArrayLength(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[[19]float64](), reflect.TypeFor[[21]float64](), reflect.TypeFor[[20]float64]()} {
		if err := codec.CheckTravel(typ); err != nil {
			t.Fatal(err)
		}
	}
	src := make([]float64, 20)
	src[19] = 7
	for _, ctx := range []any{nil, onThisHost} {
		data, err := codec.AppendValueWith(nil, src, ctx)
		if err != nil {
			t.Fatal(err)
		}
		var a20 [20]float64
		if err := codec.Unmarshal(data, &a20); err != nil || a20[19] != 7 {
			t.Fatalf("[20]float64 from 20 (context %v): %v, %v", ctx, a20, err)
		}
		for _, into := range []any{new([19]float64), new([21]float64)} {
			err := codec.Unmarshal(data, into)
			if !errors.Is(err, bus.ErrBadPayload) || !strings.Contains(err.Error(), "got 20") {
				t.Errorf("%T from 20 elements (context %v): %v, want ErrBadPayload naming 20", into, ctx, err)
			}
		}
	}
	// nil leaves an array as it was, as msgpack does.
	a := [20]float64{1}
	if err := codec.Unmarshal([]byte{0xc0}, &a); err != nil || a[0] != 1 {
		t.Fatalf("nil into an array: %v, %v", a, err)
	}
}
