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
		base: bigBase(baseline),
	}
	return p
}

// bigBase is the side that times the baseline of a big-value row.
func bigBase(baseline string) func(ctx context.Context, e *Env, n int) (time.Duration, error) {
	switch baseline {
	case "invoke_rtt":
		return func(ctx context.Context, e *Env, n int) (time.Duration, error) { return invokeLoop(ctx, e.slave, n) }
	case "codec_structs_10mb":
		return codecStructs
	}
	return func(_ context.Context, e *Env, n int) (time.Duration, error) { return rawChunks(e, n) }
}

// bigRow is a big-value row: one operation, timed on a warm worker (the
// row itself) and on a freshly spawned one (its _first row).
type bigRow struct {
	name, baseline string
	// remote: the row calls a worker spawned WithoutLane in another
	// shared-memory domain (e.remote), as if on another host.
	remote bool
	// nats: the row calls a worker of this host spawned WithoutLane
	// (e.natsSlave), as a connected server or a CLI worker is called:
	// big values go in transient segments.
	nats bool
	// prepare makes, once and untimed, what op sends.
	prepare func(ctx context.Context, e *Env) error
	// op is one operation on worker s.
	op func(ctx context.Context, e *Env, s *master.Slave) error
	// n and chunks, if set, replace bigPair's N and Chunks: for a slow
	// operation (structs_10mb's quarter of a second).
	n, chunks int
}

func (r bigRow) setup(ctx context.Context, e *Env) error {
	if err := e.bigSetup(ctx); err != nil {
		return err
	}
	if r.prepare != nil {
		return r.prepare(ctx, e)
	}
	return nil
}

// pair times op on the Env's worker (e.slave, or e.remote), warm.
func (r bigRow) pair() *Pair {
	p := bigPair(r.name, r.baseline, func(ctx context.Context, e *Env) error {
		s := e.slave
		switch {
		case r.remote:
			s = e.remote
		case r.nats:
			s = e.natsSlave
		}
		return r.op(ctx, e, s)
	})
	if r.n > 0 {
		p.N, p.Chunks = r.n, r.chunks
	}
	p.setup = func(ctx context.Context, e *Env) error {
		if err := r.setup(ctx, e); err != nil {
			return err
		}
		switch {
		case r.remote:
			return e.remoteWorker(ctx)
		case r.nats:
			return e.natsWorker(ctx)
		}
		return nil
	}
	return p
}

// first is the row's _first pair: each operation is the first on a
// worker spawned for it (as e.slave, or e.remote, was), closed after it;
// only the operation is timed, not the spawn or the close. A user's one
// big call is often their only one. What is cold is the worker: its
// process, its heap (every page it decodes into is new to it), its
// buffers; the master's side is as warm as the other rows left it (its
// pooled encoding buffers, its connection).
func (r bigRow) first() *Pair {
	return &Pair{
		Name: r.name + "_first", Baseline: r.baseline, Unit: "ns/op", N: 6, Chunks: 6,
		setup: r.setup,
		base:  bigBase(r.baseline),
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			m, err := e.master(ctx)
			if err != nil {
				return 0, err
			}
			opts := e.spawnOpts()
			switch {
			case r.remote:
				opts = append(opts, e.remoteOpts()...)
			case r.nats:
				opts = append(opts, master.WithoutLane())
			}
			var total time.Duration
			for range n {
				s, err := m.Spawn(ctx, opts...)
				if err != nil {
					return 0, err
				}
				start := time.Now()
				err = r.op(ctx, e, s)
				total += time.Since(start)
				s.Close()
				if err != nil {
					return 0, err
				}
			}
			return total, nil
		},
	}
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

func copyOp(ctx context.Context, e *Env, s *master.Slave) error {
	got, err := master.Invoke(ctx, s, SumBytes, e.big)
	if err == nil && got != e.bigSum {
		err = fmt.Errorf("the worker summed %d, want %d", got, e.bigSum)
	}
	return err
}

func copyRow() bigRow { return bigRow{name: "copy_10mb", baseline: "nats_chunks_10mb", op: copyOp} }

func copyPair() *Pair      { return copyRow().pair() }
func copyFirstPair() *Pair { return copyRow().first() }

// copyRemoteRow is copy_10mb to a worker that believes it is on another
// host: spawned WithoutLane, with another PROCESSIONAL_SHM_DOMAIN. The
// 10 MB cross the NATS server in chunks, as between two machines.
func copyRemoteRow() bigRow {
	return bigRow{name: "copy_10mb_remote", baseline: "nats_chunks_10mb", remote: true, op: copyOp}
}

func copyRemotePair() *Pair      { return copyRemoteRow().pair() }
func copyRemoteFirstPair() *Pair { return copyRemoteRow().first() }

// copyNATSRow is copy_10mb to a worker of this host by NATS: the 10 MB
// go in a transient shared-memory segment, as to a connected server or
// a CLI worker.
func copyNATSRow() bigRow {
	return bigRow{name: "copy_10mb_nats", baseline: "nats_chunks_10mb", nats: true, op: copyOp}
}

func copyNATSPair() *Pair { return copyNATSRow().pair() }

func resultOp(ctx context.Context, _ *Env, s *master.Slave) error {
	b, err := master.Invoke(ctx, s, MakeBytes, bigSize)
	if err == nil && len(b) != bigSize {
		err = fmt.Errorf("%d bytes back", len(b))
	}
	return err
}

func resultRow() bigRow {
	return bigRow{name: "result_10mb", baseline: "nats_chunks_10mb", op: resultOp}
}

// resultNATSRow is result_10mb from a worker of this host by NATS, in a
// transient segment.
func resultNATSRow() bigRow {
	return bigRow{name: "result_10mb_nats", baseline: "nats_chunks_10mb", nats: true, op: resultOp}
}

func resultNATSPair() *Pair { return resultNATSRow().pair() }

func resultPair() *Pair      { return resultRow().pair() }
func resultFirstPair() *Pair { return resultRow().first() }

// floatsRow sends a 10 MB []float64 by value to a spawned worker, which
// sums it: the numbers users send, not bytes.
func floatsRow() bigRow { return floatsRowTo("floats_10mb", false) }

// floatsRowTo is floats_10mb as name, by NATS to a worker of this host
// when nats is set (the numbers in a transient segment).
func floatsRowTo(name string, nats bool) bigRow {
	var xs []float64
	var want float64
	return bigRow{
		name: name, baseline: "nats_chunks_10mb", nats: nats,
		prepare: func(context.Context, *Env) error {
			if xs == nil {
				xs = make([]float64, bigSize/8)
				for i := range xs {
					xs[i] = float64(i % 1000)
					want += xs[i]
				}
			}
			return nil
		},
		op: func(ctx context.Context, _ *Env, s *master.Slave) error {
			got, err := master.Invoke(ctx, s, SumFloats, xs)
			if err == nil && got != want {
				err = fmt.Errorf("the worker summed %g, want %g", got, want)
			}
			return err
		},
	}
}

func floatsPair() *Pair      { return floatsRow().pair() }
func floatsNATSPair() *Pair  { return floatsRowTo("floats_10mb_nats", true).pair() }
func floatsFirstPair() *Pair { return floatsRow().first() }

// shmColdRow makes a new 10 MB shared-memory buffer for each operation,
// fills it, sends it to the worker (which reads it whole, like
// shm_10mb) and closes it: the cost of shared memory used once, where
// shm_10mb sends the same buffer each time.
func shmColdRow() bigRow {
	return bigRow{name: "shm_cold_10mb", baseline: "nats_chunks_10mb", op: func(ctx context.Context, e *Env, s *master.Slave) error {
		b, err := shm.New(bigSize)
		if err != nil {
			return err
		}
		defer b.Close()
		copy(b.Bytes(), e.big)
		got, err := master.Invoke(ctx, s, SumShm, b)
		if err == nil && got != e.bigSum {
			err = fmt.Errorf("the worker summed %d, want %d", got, e.bigSum)
		}
		return err
	}}
}

func shmColdPair() *Pair      { return shmColdRow().pair() }
func shmColdFirstPair() *Pair { return shmColdRow().first() }
