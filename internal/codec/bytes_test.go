package codec_test

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/internal/codec"
)

// Byte slices decode by the codec's own copy, to the same values as
// msgpack's, at the top and inside other values, from every form.
func TestBytesDecode(t *testing.T) {
	type holder struct {
		B []byte
		M map[string][]byte
	}
	for _, in := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte{7}, 300), bytes.Repeat([]byte{9}, 70_000)} {
		data, err := codec.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		if err := codec.Unmarshal(data, &out); err != nil || !bytes.Equal(out, in) || (in == nil) != (out == nil) {
			t.Errorf("%d bytes: got %d, %v (nil %v)", len(in), len(out), err, out == nil)
		}
		data, _ = codec.Marshal(holder{B: in, M: map[string][]byte{"k": in}})
		var h holder
		if err := codec.Unmarshal(data, &h); err != nil || !bytes.Equal(h.B, in) || !bytes.Equal(h.M["k"], in) {
			t.Errorf("%d bytes in a struct: %v", len(in), err)
		}
	}
	// A string reads as bytes, as msgpack reads it.
	data, _ := msgpack.Marshal("a string")
	var out []byte
	if err := codec.Unmarshal(data, &out); err != nil || string(out) != "a string" {
		t.Errorf("a string: %q, %v", out, err)
	}
	// The decoded bytes are a copy.
	data, _ = codec.Marshal([]byte("abc"))
	codec.Unmarshal(data, &out)
	data[len(data)-1] = 'z'
	if string(out) != "abc" {
		t.Errorf("the decoded bytes alias the message: %q", out)
	}
	// Cut short: an error, not a read past the message.
	data, _ = codec.Marshal(bytes.Repeat([]byte{1}, 300))
	var h holder
	hd, _ := codec.Marshal(holder{B: bytes.Repeat([]byte{1}, 300)})
	for _, cut := range [][]byte{data[:100], hd[:len(hd)-50]} {
		err := codec.Unmarshal(cut, &out)
		if err == nil {
			err = codec.Unmarshal(cut, &h)
		}
		if err == nil {
			t.Errorf("a binary cut short decodes")
		}
	}
}
