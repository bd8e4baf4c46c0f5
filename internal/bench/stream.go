package bench

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

// Streams: items through a spawned worker with the default window, the
// latency to the first item, and what a slow consumer costs the master's
// memory.

// Blocks yields n[0] items of n[1] bytes each.
var Blocks = bus.RegisterStream("bench.blocks", func(ctx context.Context, n [2]int, yield func([]byte) bool) error {
	b := make([]byte, n[1])
	for range n[0] {
		if !yield(b) {
			return ctx.Err()
		}
	}
	return nil
})

// The slow read of stream_backpressure_mb: 1 GiB in items of 1 MiB, the
// consumer pausing after each.
const (
	slowItems = 1024
	slowItem  = 1 << 20
	slowPause = time.Millisecond
)

// streamPair is stream_items: small items (ints) per second through a
// spawned worker's stream (builtin.Count), with the default window,
// against raw nats.go pipelined request-reply. Its sides also record
// stream_backpressure_mb: how much the master's resident memory grows
// while it reads 1 GiB of 1 MiB items slowly; against
// stream_window_mb, the default window's bytes, a configured figure.
func streamPair() *Pair {
	p := pipelinedPair()
	return &Pair{
		Name: "stream_items", Baseline: "nats_pipelined", Unit: "tasks/s", N: 100_000,
		Also:  []Figure{{Name: "stream_backpressure_mb", Baseline: "stream_window_mb", Unit: "MB"}},
		setup: func(ctx context.Context, e *Env) error { return e.rttSetup(ctx) },
		base: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			e.record("stream_window_mb", float64(master.DefaultWindowBytes)/(1<<20))
			return p.base(ctx, e, n)
		},
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			start := time.Now()
			got := 0
			for v, err := range master.Stream(ctx, e.slave, builtin.Count, n) {
				if err != nil {
					return 0, err
				}
				if got++; v != got {
					return 0, fmt.Errorf("stream_items: item %d is %d", got, v)
				}
			}
			took := time.Since(start)
			if got != n {
				return 0, fmt.Errorf("stream_items: %d items of %d", got, n)
			}
			grew, err := slowRead(ctx, e.slave)
			if err != nil {
				return 0, err
			}
			e.record("stream_backpressure_mb", grew)
			return took, nil
		},
	}
}

// slowRead reads bench.blocks' 1 GiB slowly from s, and returns how many
// MB the master's resident memory grew meanwhile, at its peak.
//
// Each reading comes after debug.FreeOSMemory (a collection, and the
// freed memory given back): resident memory is then what the process
// holds, not the garbage the collector lets pile up to its target, which
// grows with everything the rows before left alive (with it, the figure
// read 0 to 98 MB as they changed). What the stream holds, the window and
// the item in hand, is what is left.
func slowRead(ctx context.Context, s *master.Slave) (float64, error) {
	debug.FreeOSMemory()
	before, err := rssMB(os.Getpid())
	if err != nil {
		return 0, err
	}
	peak, got := before, 0
	for b, err := range master.Stream(ctx, s, Blocks, [2]int{slowItems, slowItem}) {
		if err != nil {
			return 0, err
		}
		if len(b) != slowItem {
			return 0, fmt.Errorf("stream_backpressure_mb: an item of %d bytes", len(b))
		}
		got++
		time.Sleep(slowPause)
		if got%16 == 0 {
			debug.FreeOSMemory() // b, in hand, stays
			if mb, err := rssMB(os.Getpid()); err == nil && mb > peak {
				peak = mb
			}
		}
	}
	if got != slowItems {
		return 0, fmt.Errorf("stream_backpressure_mb: %d items of %d", got, slowItems)
	}
	return peak - before, nil
}

// streamFirstPair is stream_first_item: from the start of a stream on a
// spawned worker to its first item (the loop then breaks, untimed),
// against a raw nats.go request-reply.
func streamFirstPair() *Pair {
	return &Pair{
		Name: "stream_first_item", Baseline: "nats_rtt", Unit: "ns/op", N: 2000,
		setup: func(ctx context.Context, e *Env) error { return e.rttSetup(ctx) },
		base:  natsRTT,
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			var total time.Duration
			for range n {
				start := time.Now()
				for _, err := range master.Stream(ctx, e.slave, builtin.Count, 1<<40) {
					if err != nil {
						return 0, err
					}
					total += time.Since(start)
					break
				}
			}
			return total, nil
		},
	}
}
