package master_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/master"
)

// BenchmarkScheduleNATS Schedules b.N echoes to a worker by NATS, then
// waits for them all: the master's share of pipelined_nats.
func BenchmarkScheduleNATS(b *testing.B) {
	ctx := context.Background()
	s := natsWorker(b)
	payload := make([]byte, 32)
	tasks := make([]*master.Task[[]byte], 0, 100_000)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(b.N-done, cap(tasks))
		tasks = tasks[:0]
		for range n {
			tasks = append(tasks, master.Schedule(ctx, s, builtin.Echo, payload))
		}
		for _, t := range tasks {
			if _, err := t.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
		done += n
	}
}

// BenchmarkInvokeNATS Invokes an echo at a time to a worker by NATS: the
// master's share of nats_invoke_rtt.
func BenchmarkInvokeNATS(b *testing.B) {
	ctx := context.Background()
	s := natsWorker(b)
	payload := make([]byte, 32)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := master.Invoke(ctx, s, builtin.Echo, payload); err != nil {
			b.Fatal(err)
		}
	}
}

// natsWorker spawns a worker WithoutLane, whose calls cross the NATS
// server, on a master of its own; both close with the benchmark.
func natsWorker(b *testing.B) *master.Slave {
	b.Helper()
	s, err := newMaster(b).Spawn(context.Background(), master.WithoutLane())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkInvokeManyNATS Invokes echoes from 1,000 goroutines at once
// to a worker by NATS, each calling again as soon as its call ends: the
// master's share of load.
func BenchmarkInvokeManyNATS(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := natsWorker(b)
	payload := make([]byte, 8)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := master.Invoke(ctx, s, builtin.Echo, payload); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
