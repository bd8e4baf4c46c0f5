package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
)

// poolMembers is the number of `processional worker --pool` processes in
// pool_map's pool, and of raw responders in its baseline's queue group.
const poolMembers = 2

// mapInFlight is master.Map's default window, which the raw baseline
// keeps too: as many requests in flight, no more.
const mapInFlight = 4096

// startPool runs poolMembers `processional worker --pool` processes on
// the master's server (each over TCP) and makes the pool; and as many
// raw responders in one queue group on the same server, pool_map's
// baseline.
func (e *Env) startPool(ctx context.Context) error {
	if e.pool != nil {
		return nil
	}
	m, err := e.master(ctx)
	if err != nil {
		return err
	}
	if e.poolEchoes == nil {
		e.poolSubject = "bench.pool." + wire.NewID("b")
		for range poolMembers {
			c, _, err := e.startEcho(ctx, e.poolSubject, "PROCESSIONAL_BENCH_QUEUE=q")
			if err != nil {
				return err
			}
			e.poolEchoes = append(e.poolEchoes, c)
		}
	}
	name := wire.NewID("pool")
	for range poolMembers {
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
		if err == nil && len(p.Members()) == poolMembers {
			e.pool = p
			return nil
		}
		if p != nil {
			p.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pool %s: the %d workers did not join: %v", name, poolMembers, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// poolItems returns the items pool_map maps, 0 to n-1, and each one's
// msgpack encoding: the argument's bytes in a call of bench.inc, which
// the raw baseline sends as its requests.
func poolItems(n int) ([]int, [][]byte, error) {
	items := make([]int, n)
	encoded := make([][]byte, n)
	for i := range items {
		items[i] = i
		b, err := msgpack.Marshal(i)
		if err != nil {
			return nil, nil, err
		}
		encoded[i] = b
	}
	return items, encoded, nil
}

// poolPair measures Map over small items to a pool of poolMembers
// worker processes against nats_pool_map: the same items, as raw
// nats.go requests from the same connection to a queue group of as many
// raw responder processes, with as many in flight as Map keeps.
func poolPair() *Pair {
	return &Pair{
		Name: "pool_map", Baseline: "nats_pool_map", Unit: "tasks/s", N: 100_000,
		setup: func(ctx context.Context, e *Env) error { return e.startPool(ctx) },
		base: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			_, encoded, err := poolItems(n)
			if err != nil {
				return 0, err
			}
			return rawMap(ctx, e.m.Conn(), e.poolSubject, encoded)
		},
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			items, _, err := poolItems(n)
			if err != nil {
				return 0, err
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

// rawMap sends each of items as a raw request to subject, keeping
// mapInFlight in flight, each with a reply subject of its own
// (<inbox>.<index>) so that its echo is checked against it, and returns
// once every reply has come.
func rawMap(ctx context.Context, nc *nats.Conn, subject string, items [][]byte) (time.Duration, error) {
	n := len(items)
	if n == 0 {
		return 0, nil
	}
	inbox := nats.NewInbox()
	var (
		sent, got atomic.Int64
		bad       atomic.Pointer[error]
	)
	fail := func(err error) { bad.CompareAndSwap(nil, &err) }
	all := make(chan struct{})
	send := func(i int64) {
		if err := nc.PublishRequest(subject, inbox+"."+strconv.FormatInt(i, 10), items[i]); err != nil {
			fail(err)
		}
	}
	sub, err := replySub(nc, inbox+".*", func(m *nats.Msg) {
		i, err := strconv.Atoi(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:])
		switch {
		case err != nil || i < 0 || i >= n:
			fail(fmt.Errorf("raw map: a reply on %s", m.Subject))
		case !bytes.Equal(m.Data, items[i]):
			fail(fmt.Errorf("raw map: item %d echoed %x, want %x", i, m.Data, items[i]))
		}
		if next := sent.Add(1) - 1; next < int64(n) {
			send(next)
		}
		if got.Add(1) == int64(n) {
			close(all)
		}
	})
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	start := time.Now()
	first := min(n, mapInFlight)
	sent.Store(int64(first))
	for i := range first {
		send(int64(i))
	}
	if err := awaitReplies(ctx, all, &got, n, "raw map"); err != nil {
		return 0, err
	}
	if p := bad.Load(); p != nil {
		return 0, *p
	}
	return time.Since(start), nil
}
