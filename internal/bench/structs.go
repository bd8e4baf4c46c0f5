package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

// Point is the element of structs_10mb's slice: small structs, as users
// send them.
type Point struct {
	ID   int64
	X, Y float64
	Name string
}

// structsLen is the number of Points in structs_10mb's slice: about
// 10 MB of msgpack (msgpack.Marshal's encoding, maps by field name).
const structsLen = 225_000

// CountStructs decodes a slice of Points and returns its length.
var CountStructs = bus.Register("bench.countStructs", func(_ context.Context, ps []Point) (int, error) {
	return len(ps), nil
})

// makePoints returns n Points with varied values and short varied names.
func makePoints(n int) []Point {
	names := []string{"ada", "bo", "cyd", "dee", "eli", "fay", "gus", "hal", "ivy", "jo", "kai", "lu"}
	ps := make([]Point, n)
	for i := range ps {
		ps[i] = Point{ID: int64(i) * 7919, X: float64(i) / 3, Y: float64(i%977) * 1.5, Name: names[i%len(names)] + strconv.Itoa(i%1000)}
	}
	return ps
}

func (e *Env) structsSetup(context.Context) error {
	if e.points == nil {
		e.points = makePoints(structsLen)
	}
	return nil
}

// codecStructs is codec_structs_10mb: msgpack's own Marshal and
// Unmarshal of the Points, in this process, no transport: what any
// msgpack user pays for the value.
func codecStructs(_ context.Context, e *Env, n int) (time.Duration, error) {
	start := time.Now()
	for range n {
		data, err := msgpack.Marshal(e.points)
		if err != nil {
			return 0, err
		}
		var out []Point
		if err := msgpack.Unmarshal(data, &out); err != nil {
			return 0, err
		}
		if len(out) != len(e.points) {
			return 0, fmt.Errorf("%d points decoded, want %d", len(out), len(e.points))
		}
	}
	return time.Since(start), nil
}

// structsRow sends the Points by value to the worker, which decodes them
// and returns their number.
func structsRow() bigRow {
	return bigRow{
		name: "structs_10mb", baseline: "codec_structs_10mb", n: 10, chunks: 5,
		prepare: func(ctx context.Context, e *Env) error { return e.structsSetup(ctx) },
		op: func(ctx context.Context, e *Env, s *master.Slave) error {
			got, err := master.Invoke(ctx, s, CountStructs, e.points)
			if err == nil && got != len(e.points) {
				err = fmt.Errorf("the worker counted %d points, want %d", got, len(e.points))
			}
			return err
		},
	}
}

func structsPair() *Pair      { return structsRow().pair() }
func structsFirstPair() *Pair { return structsRow().first() }
