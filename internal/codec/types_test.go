package codec_test

import (
	"strings"
	"testing"

	"github.com/processional/processional/internal/codec"
	"github.com/vmihailenco/msgpack/v5"
)

type point struct {
	X, Y  int
	Label string `msgpack:"label"`
}

type shape struct {
	Name   string
	Points []point
	Tags   map[string]int
	Next   *shape
	Blob   []byte
	Ratio  float64
	Nested struct{ A, B bool }
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := codec.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ptrEncoded encodes itself, but only through a pointer.
type ptrEncoded struct{ N int }

func (p *ptrEncoded) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeInt(int64(p.N)) }
func (p *ptrEncoded) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	p.N, err = dec.DecodeInt()
	return err
}

// wantSubstrings fails t unless s contains every one of subs.
func wantSubstrings(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s %q does not contain %q", what, s, sub)
		}
	}
}
