package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
)

// startPool runs two `processional worker --pool` processes on the
// master's server and makes the pool.
func (e *Env) startPool(ctx context.Context) error {
	if e.pool != nil {
		return nil
	}
	m, err := e.master(ctx)
	if err != nil {
		return err
	}
	name := wire.NewID("pool")
	for range 2 {
		cmd := exec.Command(e.binary, "worker", "--nats", m.URL(), "--token", m.Token(), "--pool", name)
		cmd.Stdout, cmd.Stderr = nil, os.Stderr
		c, err := startProc(cmd)
		if err != nil {
			return err
		}
		e.poolWorkers = append(e.poolWorkers, c)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := m.Pool(ctx, name)
		if err == nil && len(p.Members()) == 2 {
			e.pool = p
			return nil
		}
		if p != nil {
			p.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pool %s: the two workers did not join: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// poolPair measures Map over small items to a pool of two local workers
// against raw pipelined request-reply to one responder.
func poolPair() *Pair {
	p := pipelinedPair()
	return &Pair{
		Name: "pool_map", Baseline: "nats_pipelined", Unit: "tasks/s", N: 100_000,
		setup: func(ctx context.Context, e *Env) error {
			if err := p.setup(ctx, e); err != nil {
				return err
			}
			return e.startPool(ctx)
		},
		base: p.base,
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			items := make([]int, n)
			for i := range items {
				items[i] = i
			}
			start := time.Now()
			res, errs := master.Map(ctx, e.pool, Inc, items)
			for i, err := range errs {
				if err != nil {
					return 0, fmt.Errorf("pool_map item %d: %w", i, err)
				}
				if res[i] != i+1 {
					return 0, fmt.Errorf("pool_map item %d: %d", i, res[i])
				}
			}
			return time.Since(start), nil
		},
	}
}
