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

// BenchmarkMaps is BenchmarkStructs on maps: 200,000 entries of string
// to float64, and of string to a small struct.
func BenchmarkMaps(b *testing.B) {
	floats := make(map[string]float64, 200_000)
	points := make(map[string]benchPoint, 200_000)
	for i := range 200_000 {
		k := fmt.Sprintf("key-%d", i)
		floats[k] = float64(i) / 3
		points[k] = benchPoint{ID: int64(i), X: float64(i), Y: 2, Name: k}
	}
	for _, c := range []struct {
		name string
		v    any
		out  func() any
	}{
		{"floats", floats, func() any { return new(map[string]float64) }},
		{"structs", points, func() any { return new(map[string]benchPoint) }},
	} {
		data, _ := codec.Marshal(c.v)
		b.Run(c.name+"/codec-encode", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			buf := make([]byte, 0, len(data))
			for b.Loop() {
				buf, _ = codec.AppendValue(buf[:0], c.v)
			}
		})
		b.Run(c.name+"/msgpack-encode", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				msgpack.Marshal(c.v)
			}
		})
		b.Run(c.name+"/codec-decode", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				codec.Unmarshal(data, c.out())
			}
		})
		b.Run(c.name+"/msgpack-decode", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				msgpack.Unmarshal(data, c.out())
			}
		})
	}
}
