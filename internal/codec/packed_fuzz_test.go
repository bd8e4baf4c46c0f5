package codec_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/processional/processional/internal/codec"
)

// FuzzPacked decodes any bytes into every slice type with a packed form,
// an array and an interface{}: an error or a value, never a panic; and a
// value decoded re-encodes, in both forms, to bytes that decode to the
// same value (compared by their encodings, for NaNs).
func FuzzPacked(f *testing.F) {
	for _, v := range packedValues() {
		data, _ := codec.AppendValueWith(nil, v, onThisHost)
		f.Add(data)
	}
	for k := range byte(13) {
		f.Add(packed(k, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}))
		f.Add(packed(k, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}))
	}
	f.Add(packed(1, make([]byte, 17)))
	f.Add([]byte{0xc7, 0, byte(codec.PackedExtType)})
	f.Add([]byte{0xd4, byte(codec.PackedExtType), 6})
	types := []reflect.Type{reflect.TypeFor[[16]int8](), reflect.TypeFor[[3]float64]()}
	for _, v := range packedValues() {
		types = append(types, reflect.TypeOf(v))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var x any
		_ = codec.Unmarshal(data, &x)
		for _, typ := range types {
			into := reflect.New(typ)
			if codec.Unmarshal(data, into.Interface()) != nil {
				continue
			}
			for _, ctx := range []any{nil, onThisHost} {
				b1, err := codec.AppendValueWith(nil, into.Elem().Interface(), ctx)
				if err != nil {
					t.Fatalf("%s decoded from % x does not encode: %v", typ, data, err)
				}
				again := reflect.New(typ)
				if err := codec.Unmarshal(b1, again.Interface()); err != nil {
					t.Fatalf("%s: % x re-encoded as % x does not decode: %v", typ, data, b1, err)
				}
				b2, err := codec.AppendValueWith(nil, again.Elem().Interface(), ctx)
				if err != nil || !bytes.Equal(b1, b2) {
					t.Fatalf("%s: % x decodes to a value that re-encodes as % x, then % x (%v)", typ, data, b1, b2, err)
				}
			}
		}
	})
}
