package codec_test

import (
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/internal/codec"
)

type benchPoint struct {
	ID   int64
	X, Y float64
	Name string
}

// BenchmarkStructs compares the codec with msgpack's own Marshal and
// Unmarshal on a slice of 200,000 small structs (about 10 MB): what the
// codec adds to msgpack (issue 15, part 2). msgpack.Marshal reuses its
// pooled buffer, which codec.Marshal, given no buffer, cannot; the calls'
// encoding (wire.AppendCallWith) passes pooled buffers.
func BenchmarkStructs(b *testing.B) {
	ps := make([]benchPoint, 200_000)
	for i := range ps {
		ps[i] = benchPoint{ID: int64(i), X: float64(i) / 3, Y: float64(i) * 2, Name: fmt.Sprintf("point-%d", i)}
	}
	data, _ := codec.Marshal(ps)
	b.Run("codec-encode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 0, len(data))
		for b.Loop() {
			buf, _ = codec.AppendValue(buf[:0], ps)
		}
	})
	b.Run("msgpack-encode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			msgpack.Marshal(ps)
		}
	})
	b.Run("codec-decode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var out []benchPoint
			codec.Unmarshal(data, &out)
		}
	})
	b.Run("msgpack-decode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var out []benchPoint
			msgpack.Unmarshal(data, &out)
		}
	})
}
