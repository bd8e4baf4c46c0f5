package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/processional/processional/internal/registry"
	"github.com/vmihailenco/msgpack/v5"
)

// everyCode returns one encoded value of every msgpack format code, at
// each length width.
func everyCode(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	add := func(write func(enc *msgpack.Encoder, buf *bytes.Buffer) error) {
		var buf bytes.Buffer
		if err := write(msgpack.NewEncoder(&buf), &buf); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	scalar := func(f func(enc *msgpack.Encoder) error) {
		add(func(enc *msgpack.Encoder, _ *bytes.Buffer) error { return f(enc) })
	}
	scalar(func(e *msgpack.Encoder) error { return e.EncodeNil() })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeBool(false) })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeBool(true) })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeInt(5) })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeInt(-5) })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeUint8(200) })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeUint16(60000) })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeUint32(1 << 31) })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeUint64(1 << 63) })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeInt8(-100) })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeInt16(-30000) })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeInt32(-1 << 30) })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeInt64(-1 << 62) })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeFloat32(1.5) })
	scalar(func(e *msgpack.Encoder) error { return e.EncodeFloat64(math.Pi) })
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		scalar(func(e *msgpack.Encoder) error { return e.EncodeString(strings.Repeat("s", n)) })
	}
	for _, n := range []int{0, 255, 256, 65535, 65536} {
		scalar(func(e *msgpack.Encoder) error { return e.EncodeBytes(make([]byte, n)) })
	}
	for _, n := range []int{0, 15, 16, 65535, 65536} {
		scalar(func(e *msgpack.Encoder) error {
			if err := e.EncodeArrayLen(n); err != nil {
				return err
			}
			for i := range n {
				if err := e.EncodeInt16(int16(i)); err != nil {
					return err
				}
			}
			return nil
		})
		scalar(func(e *msgpack.Encoder) error {
			if err := e.EncodeMapLen(n); err != nil {
				return err
			}
			for i := range n {
				if err := e.EncodeUint32(uint32(i)); err != nil {
					return err
				}
				if err := e.EncodeFloat64(0.5); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, n := range []int{1, 2, 4, 8, 16, 0, 3, 255, 256, 65535, 65536} {
		add(func(e *msgpack.Encoder, buf *bytes.Buffer) error {
			if err := e.EncodeExtHeader(42, n); err != nil {
				return err
			}
			buf.Write(bytes.Repeat([]byte{0xc1}, n)) // ext bytes are opaque
			return nil
		})
	}
	return out
}

func TestValueLenEveryCode(t *testing.T) {
	items := everyCode(t)
	codes := make(map[byte]bool)
	var all []byte
	all = msgpackArrayHeader(all, len(items))
	for _, item := range items {
		codes[item[0]] = true
		all = append(all, item...)
	}
	for _, c := range []byte{0xc0, 0xc2, 0xc3, 0x05, 0xfb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xca, 0xcb,
		0xa0, 0xbf, 0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6, 0x90, 0x9f, 0xdc, 0xdd, 0x80, 0x8f, 0xde, 0xdf,
		0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xc7, 0xc8, 0xc9} {
		if !codes[c] {
			t.Errorf("no item starts with code 0x%02x", c)
		}
	}
	items = append(items, all)
	for i, item := range items {
		// Bytes after the value are not its own.
		n, err := valueLen(append(item[:len(item):len(item)], 0xc1, 0x00))
		if err != nil || n != len(item) {
			t.Fatalf("item %d (code 0x%02x, %d bytes): valueLen = %d, %v", i, item[0], len(item), n, err)
		}
		for _, cut := range []int{0, 1, len(item) / 2, len(item) - 1} {
			if cut >= len(item) {
				continue
			}
			if _, err := valueLen(item[:cut]); err == nil {
				t.Fatalf("item %d (code 0x%02x): valueLen of the first %d of %d bytes succeeded", i, item[0], cut, len(item))
			}
		}
	}
}

func msgpackArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n < 65536:
		return append(b, 0xdc, byte(n>>8), byte(n))
	}
	return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// skipLen is what msgpack's own Skip makes of data.
func skipLen(data []byte) (int, error) {
	r := bytes.NewReader(data)
	if err := msgpack.NewDecoder(r).Skip(); err != nil {
		return 0, err
	}
	return len(data) - r.Len(), nil
}

// TestValueLenAgreesWithSkip compares valueLen with the decoder's Skip on
// mutations of real values. valueLen may refuse more (counts larger than
// the message), never less, and agrees on the length of what both accept.
func TestValueLenAgreesWithSkip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var seeds [][]byte
	for _, item := range everyCode(t) {
		if len(item) < 4096 {
			seeds = append(seeds, item)
		}
	}
	for _, v := range []any{
		map[string]any{"a": []any{1, "b", nil, 2.5, []byte{1}}, "c": map[string]int{"d": 1}},
		struct {
			Type, Message, Worker string
			Sentinels             []string
		}{Type: "T", Message: "m", Worker: "w", Sentinels: []string{"x", "y"}},
		[]any{[]any{[]any{}}, map[string]any{}},
	} {
		b, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for range 50000 {
		data := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		for range rng.IntN(4) {
			data[rng.IntN(len(data))] = byte(rng.UintN(256))
		}
		data = data[:rng.IntN(len(data)+1)]
		checkValueLen(t, data)
	}
}

func checkValueLen(t testing.TB, data []byte) {
	n, err := valueLen(data)
	sn, serr := skipLen(data)
	switch {
	case err == nil && serr != nil:
		t.Fatalf("valueLen(% x) = %d, but Skip fails: %v", data, n, serr)
	case err == nil && n != sn:
		t.Fatalf("valueLen(% x) = %d, Skip takes %d", data, n, sn)
	case err != nil && serr == nil && !strings.Contains(err.Error(), "announced"):
		t.Fatalf("valueLen(% x) = %v, but Skip takes %d bytes", data, err, sn)
	}
}

func FuzzValueLen(f *testing.F) {
	for _, item := range everyCode(f) {
		if len(item) < 4096 {
			f.Add(item)
		}
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) { checkValueLen(t, data) })
}

func TestCyclesAndDepth(t *testing.T) {
	type node struct {
		Next *node
		Any  any
		skip *node
	}
	a := &node{}
	a.Next = &node{Next: a}
	b := &node{}
	b.Any = []any{1, map[string]any{"x": b}}
	shared := &node{}
	dag := &node{Next: shared, Any: shared} // twice, not a cycle
	private := &node{}
	private.skip = private // unexported: msgpack does not follow it
	type skipped struct {
		Self *skipped `msgpack:"-,omitempty"`
		N    int
	}
	notEncoded := &skipped{N: 1}
	notEncoded.Self = notEncoded
	embedded := &embedsNode{N: 1}
	embedded.innerNode = &innerNode{}
	embedded.innerNode.Next = embedded
	long := &node{}
	for range MaxDepth + 1 {
		long = &node{Next: long}
	}
	for _, tc := range []struct {
		name string
		v    any
		want string // "" for no error
	}{
		{"cycle through pointers", a, "holds itself (a cycle) at .Next.Next"},
		{"cycle through an interface, a slice and a map", b, "at .Any[1][x]"},
		{"shared, not a cycle", dag, ""},
		{"unexported field", private, ""},
		{"too deep", long, "nested deeper than 2000 levels at .Next.Next.Next…("},
		{"no pointers at all", []int{1, 2}, ""},
		{"a field msgpack skips", notEncoded, ""},
		{"through an embedded unexported struct, which msgpack inlines", embedded, "at .innerNode.Next"},
	} {
		_, err := AppendValue(nil, tc.v)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.Is(err, registry.ErrEncode) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want registry.ErrEncode saying %q", tc.name, err, tc.want)
		}
	}
	deep := append(bytes.Repeat([]byte{0x91}, MaxDepth+1), 0x01)
	var v any
	if err := Unmarshal(deep, &v); err == nil || !strings.Contains(err.Error(), "nested deeper than") {
		t.Errorf("a message nested %d deep: %v", MaxDepth+1, err)
	}
	if err := Unmarshal(deep[1:], &v); err != nil {
		t.Errorf("a message nested %d deep: %v", MaxDepth, err)
	}
}

type innerNode struct{ Next *embedsNode }

type embedsNode struct {
	*innerNode
	N int
}

// BenchmarkAppendValueAny encodes values of any-typed parts, which the
// cycle walk looks into.
func BenchmarkAppendValueAny(b *testing.B) {
	v := make([]map[string]any, 1000)
	for i := range v {
		v[i] = map[string]any{"a": i, "b": "x", "c": []any{1, 2.5}}
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendValue(buf[:0], v); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAppendScalar checks that the scalars encoded by hand come out byte
// for byte as msgpack's encoder writes them.
func TestAppendScalar(t *testing.T) {
	long := strings.Repeat("x", 70_000)
	values := []any{
		nil, []byte(nil), []byte{}, []byte("abc"), []byte(long[:255]), []byte(long[:256]), []byte(long[:65535]), []byte(long[:65536]),
		"", "a", long[:31], long[:32], long[:255], long[:256], long[:65535], long[:65536],
		true, false,
		0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64,
		0.0, -0.0, 1.5, math.Inf(1), math.NaN(), math.MaxFloat64,
	}
	for _, v := range values {
		got, ok := appendScalar([]byte{0x42}, v)
		if !ok {
			t.Fatalf("%T not taken", v)
		}
		want, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[1:], want) || got[0] != 0x42 {
			t.Errorf("%T %.20v: % x, msgpack writes % x", v, v, got[1:min(len(got), 12)], want[:min(len(want), 11)])
		}
	}
	if _, ok := appendScalar(nil, int64(1)); ok {
		t.Error("int64 taken: msgpack writes it in 9 bytes, not the shortest form")
	}
}

// TestDecodeScalar checks that the scalars decoded by hand come out as
// msgpack decodes them, for every form they take; the forms they leave
// to msgpack are left.
func TestDecodeScalar(t *testing.T) {
	var encoded [][]byte
	for _, v := range []any{
		0, 1, 127, 128, 255, 256, 65535, 65536, int64(math.MaxUint32), int64(math.MaxUint32) + 1, int64(math.MaxInt64), uint64(math.MaxUint64),
		-1, -32, -33, -128, -129, -32768, -32769, int64(math.MinInt32), int64(math.MinInt32) - 1, int64(math.MinInt64),
		int8(-5), int16(300), int32(-70000), uint8(200), uint16(60000), uint32(4000000000),
		"", "a", strings.Repeat("s", 40), strings.Repeat("t", 300), []byte("bin"), []byte{},
		true, false, 1.5, float32(2.5), math.Inf(-1), nil,
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		encoded = append(encoded, b)
	}
	encoded = append(encoded, []byte{0xd3, 0, 0, 0, 0, 0, 0, 0, 1}, []byte{0xcf, 0, 0, 0, 0, 0, 0, 0, 7}, []byte{0xcd, 1}, []byte{0xa5, 'a'}, []byte{0xcb, 1, 2}, nil)
	check := func(t *testing.T, data []byte, fast, slow any) {
		t.Helper()
		if !decodeScalar(data, fast) {
			return // left to msgpack
		}
		if err := msgpack.Unmarshal(data, slow); err != nil {
			t.Errorf("% x: decoded by hand into %T, msgpack fails: %v", data, fast, err)
			return
		}
		if got, want := fmt.Sprint(reflect.ValueOf(fast).Elem()), fmt.Sprint(reflect.ValueOf(slow).Elem()); got != want {
			t.Errorf("% x into %T: %s by hand, %s by msgpack", data, fast, got, want)
		}
	}
	for _, data := range encoded {
		check(t, data, new(int), new(int))
		check(t, data, new(int64), new(int64))
		check(t, data, new(string), new(string))
		check(t, data, new(bool), new(bool))
		check(t, data, new(float64), new(float64))
	}
	if decodeScalar([]byte{0x01}, new(int32)) {
		t.Error("an int32 taken: msgpack decodes it")
	}
}

// A nil pointer of a type decoded by hand fails as msgpack fails it,
// and never panics.
func TestDecodeScalarNilPointer(t *testing.T) {
	for _, v := range []any{(*int)(nil), (*int64)(nil), (*string)(nil), (*bool)(nil), (*float64)(nil)} {
		for _, data := range [][]byte{{0x01}, {0xa1, 'a'}, {0xc3}, {0xcb, 0, 0, 0, 0, 0, 0, 0, 0}} {
			if err := Unmarshal(data, v); err == nil {
				t.Errorf("% x into %T(nil): no error", data, v)
			}
		}
	}
}

// AppendSmall leaves to AppendValueWith a scalar that would go in a
// transient segment, however low TransientMin was set.
func TestAppendSmallTransientMin(t *testing.T) {
	defer func(old int) { TransientMin = old }(TransientMin)
	TransientMin = 8
	if _, ok := AppendSmall(nil, int(1<<40)); ok {
		t.Error("a 9-byte int taken, at a TransientMin of 8")
	}
	if _, ok := AppendSmall(nil, 1); !ok {
		t.Error("a 1-byte int refused, at a TransientMin of 8")
	}
}
