package bench

import (
	"context"
	"fmt"
	"time"
	"unsafe"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
	"github.com/processional/processional/shm"
)

// bigSize is the size of the big-value pairs' values.
const bigSize = 10 << 20

// sum adds up b's bytes, eight at a time: the worker reads every byte, at
// memory speed.
func sum(b []byte) uint64 {
	var s uint64
	n := len(b) / 8
	if n > 0 {
		for _, w := range unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), n) {
			s += w&0x00ff00ff00ff00ff + w>>8&0x00ff00ff00ff00ff
		}
		s = s&0xffff + s>>16&0xffff + s>>32&0xffff + s>>48
	}
	for _, x := range b[n*8:] {
		s += uint64(x)
	}
	return s
}

var (
	// SumShm reads a shared-memory buffer whole.
	SumShm = bus.Register("bench.sumShm", func(_ context.Context, b *shm.Buffer) (uint64, error) {
		return sum(b.Bytes()), nil
	})
	// TimedSumShm reads a shared-memory buffer whole, and returns how long
	// the read took.
	TimedSumShm = bus.Register("bench.timedSumShm", func(_ context.Context, b *shm.Buffer) (time.Duration, error) {
		start := time.Now()
		if sum(b.Bytes()) == 1 {
			return 0, fmt.Errorf("unlikely")
		}
		return time.Since(start), nil
	})
	// SumBytes reads a byte slice whole.
	SumBytes = bus.Register("bench.sumBytes", func(_ context.Context, b []byte) (uint64, error) {
		return sum(b), nil
	})
	// SumFloats adds up a slice of float64, received by value.
	SumFloats = bus.Register("bench.sumFloats", func(_ context.Context, xs []float64) (float64, error) {
		var s float64
		for _, x := range xs {
			s += x
		}
		return s, nil
	})
	// MakeBytes returns n bytes.
	MakeBytes = bus.Register("bench.makeBytes", func(_ context.Context, n int) ([]byte, error) {
		b := make([]byte, n)
		for i := 0; i < n; i += 4096 {
			b[i] = byte(i)
		}
		return b, nil
	})
)

func (e *Env) bigSetup(ctx context.Context) error {
	if err := e.rttSetup(ctx); err != nil {
		return err
	}
	if e.big == nil {
		e.big = make([]byte, bigSize)
		for i := range e.big {
			e.big[i] = byte(i)
		}
		e.bigSum = sum(e.big)
	}
	if e.bigShm == nil {
		b, err := shm.New(bigSize)
		if err != nil {
			return err
		}
		copy(b.Bytes(), e.big)
		e.bigShm = b
	}
	if e.acker == nil {
		e.ackSubject = "bench.chunks." + wire.NewID("b")
		c, _, err := e.startEcho(ctx, e.ackSubject, "PROCESSIONAL_BENCH_ACK=1")
		if err != nil {
			return err
		}
		e.acker = c
	}
	return nil
}

// rawChunks sends the 10 MB in max-payload chunks to the raw receiver, the
// last as a request it acknowledges.
func rawChunks(e *Env, n int) (time.Duration, error) {
	nc := e.m.Conn()
	size := int(nc.MaxPayload())
	start := time.Now()
	for range n {
		for off := 0; off < len(e.big); off += size {
			end := min(off+size, len(e.big))
			if end < len(e.big) {
				if err := nc.Publish(e.ackSubject, e.big[off:end]); err != nil {
					return 0, err
				}
				continue
			}
			if _, err := nc.Request(e.ackSubject, e.big[off:end], 30*time.Second); err != nil {
				return 0, err
			}
		}
	}
	return time.Since(start), nil
}

func bigPair(name, baseline string, measure func(ctx context.Context, e *Env) error) *Pair {
	p := &Pair{
		Name: name, Baseline: baseline, Unit: "ns/op", N: 40, Chunks: 10,
		setup: func(ctx context.Context, e *Env) error { return e.bigSetup(ctx) },
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			start := time.Now()
			for range n {
				if err := measure(ctx, e); err != nil {
					return 0, err
				}
			}
			return time.Since(start), nil
		},
	}
	switch baseline {
	case "invoke_rtt":
		p.base = func(ctx context.Context, e *Env, n int) (time.Duration, error) { return invokeLoop(ctx, e.slave, n) }
	default:
		p.base = func(_ context.Context, e *Env, n int) (time.Duration, error) { return rawChunks(e, n) }
	}
	return p
}

func shmPair() *Pair {
	p := bigPair("shm_10mb", "invoke_rtt", func(ctx context.Context, e *Env) error {
		s, err := master.Invoke(ctx, e.slave, SumShm, e.bigShm)
		if err == nil && s != e.bigSum {
			err = fmt.Errorf("shm_10mb: the worker summed %d, want %d", s, e.bigSum)
		}
		return err
	})
	// read_10mb: the time the worker's function spends reading the 10 MB,
	// as the worker itself measures it: what shm_10mb's goal adds to 2.
	p.Extra = []string{"read_10mb"}
	p.extra = append(p.extra, func(ctx context.Context, e *Env, n int) (time.Duration, error) {
		var total time.Duration
		for range n {
			d, err := master.Invoke(ctx, e.slave, TimedSumShm, e.bigShm)
			if err != nil {
				return 0, err
			}
			total += d
		}
		return total, nil
	})
	return p
}

func copyPair() *Pair {
	return bigPair("copy_10mb", "nats_chunks_10mb", func(ctx context.Context, e *Env) error {
		_, err := master.Invoke(ctx, e.slave, SumBytes, e.big)
		return err
	})
}

func resultPair() *Pair {
	return bigPair("result_10mb", "nats_chunks_10mb", func(ctx context.Context, e *Env) error {
		b, err := master.Invoke(ctx, e.slave, MakeBytes, bigSize)
		if err == nil && len(b) != bigSize {
			err = fmt.Errorf("result_10mb: %d bytes back", len(b))
		}
		return err
	})
}

// floatsPair sends a 10 MB []float64 by value to a spawned worker, which
// sums it: the numbers users send, not bytes.
func floatsPair() *Pair {
	var xs []float64
	var want float64
	return bigPair("floats_10mb", "nats_chunks_10mb", func(ctx context.Context, e *Env) error {
		if xs == nil {
			xs = make([]float64, bigSize/8)
			for i := range xs {
				xs[i] = float64(i % 1000)
				want += xs[i]
			}
		}
		s, err := master.Invoke(ctx, e.slave, SumFloats, xs)
		if err == nil && s != want {
			err = fmt.Errorf("floats_10mb: the worker summed %g, want %g", s, want)
		}
		return err
	})
}
