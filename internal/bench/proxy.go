package bench

import (
	"context"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/master"
)

// proxyPair measures a small method call through a Ref (a counter's Add
// on a spawned worker) against a raw nats.go request-reply.
func proxyPair() *Pair {
	return &Pair{
		Name: "proxy_call", Baseline: "nats_rtt", Unit: "ns/op", N: 4_000, Chunks: 20,
		setup: func(ctx context.Context, e *Env) error {
			if err := e.rttSetup(ctx); err != nil {
				return err
			}
			if e.counter == nil {
				r, err := master.Wrap(ctx, e.slave, builtin.NewCounter, 0)
				if err != nil {
					return err
				}
				e.counter = r
			}
			return nil
		},
		base: natsRTT,
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			start := time.Now()
			for range n {
				if _, err := master.Method[int64](ctx, e.counter, "Add", 1).Wait(ctx); err != nil {
					return 0, err
				}
			}
			return time.Since(start), nil
		},
	}
}
