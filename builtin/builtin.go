// Package builtin registers a handful of small functions that every
// processional binary serves, so that a bare `processional worker` can be
// tried at once, and so that benchmarks and tests have a common workload.
//
// Import it from a master to call these functions by their typed handles
// on a worker built from cmd/processional.
package builtin

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/shm"
)

// ErrNegativeSleep is returned by [Sleep] for a negative duration.
var ErrNegativeSleep = bus.RegisterError("builtin.ErrNegativeSleep", errors.New("builtin: negative sleep"))

var (
	// Sum adds up a list of integers.
	Sum = bus.Register("sum", func(_ context.Context, xs []int) (int, error) {
		n := 0
		for _, x := range xs {
			n += x
		}
		return n, nil
	})

	// Echo returns its argument.
	Echo = bus.Register("echo", func(_ context.Context, b []byte) ([]byte, error) { return b, nil })

	// Sleep sleeps for the given duration, or until its context ends, and
	// returns the duration it slept.
	Sleep = bus.Register("sleep", func(ctx context.Context, d time.Duration) (time.Duration, error) {
		if d < 0 {
			return 0, fmt.Errorf("sleep %s: %w", d, ErrNegativeSleep)
		}
		start := time.Now()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return time.Since(start), nil
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		}
	})

	// SHA256 returns the SHA-256 digest of its argument.
	SHA256 = bus.Register("sha256", func(_ context.Context, b []byte) ([]byte, error) {
		sum := sha256.Sum256(b)
		return sum[:], nil
	})

	// Panic panics with its argument: to see a remote panic arrive with
	// its stack.
	Panic = bus.Register("panic", func(_ context.Context, msg string) (struct{}, error) {
		panic(msg)
	})

	// Getpid returns the process id of the process that runs it.
	Getpid = bus.Register("getpid", func(context.Context, struct{}) (int, error) { return os.Getpid(), nil })

	// Count is a stream: it yields 1, 2, … n, and stops early when its
	// consumer wants no more; it reports its progress ({"done": i, "of":
	// n}) as it goes. From the nats CLI:
	//
	//	nats req proc.<worker>.json.count 5 --replies 0 --wait-for-empty
	Count = bus.RegisterStream("count", func(ctx context.Context, n int, yield func(int) bool) error {
		if n < 0 {
			return fmt.Errorf("count %d: %w", n, ErrNegativeCount)
		}
		for i := 1; i <= n; i++ {
			if !yield(i) {
				return ctx.Err()
			}
			bus.Progress(ctx, CountProgress{Done: i, Of: n})
		}
		return nil
	})
)

// Work works for d (it sleeps, or until its context ends), reporting
// its progress, the percentage of d done, every 10 ms; it returns the
// last percentage.
var Work = bus.Register("work", func(ctx context.Context, d time.Duration) (int, error) {
	if d < 0 {
		return 0, fmt.Errorf("work %s: %w", d, ErrNegativeSleep)
	}
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		done := 100
		if d > 0 {
			done = int(min(100, 100*time.Since(start)/d))
		}
		bus.Progress(ctx, done)
		if done == 100 {
			return done, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return done, ctx.Err()
		}
	}
})

// CountProgress is the progress [Count] reports.
type CountProgress struct {
	Done int `json:"done" msgpack:"done"`
	Of   int `json:"of" msgpack:"of"`
}

// ErrNegativeCount is returned by [Count] for a negative count.
var ErrNegativeCount = bus.RegisterError("builtin.ErrNegativeCount", errors.New("builtin: negative count"))

// Counter is a small stateful object, for examples and benchmarks of
// remote objects: wrap one on a worker with
// master.Wrap(ctx, slave, builtin.NewCounter, start), then call its
// methods through the Ref.
type Counter struct {
	mu sync.Mutex
	N  int64 // the count
}

// Add adds d to the count and returns the new count.
func (c *Counter) Add(d int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.N += d
	return c.N
}

// Get returns the count.
func (c *Counter) Get() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.N
}

// NewCounter makes a Counter that starts at its argument; it is a
// constructor, for master.Wrap.
var NewCounter = bus.RegisterConstructor("builtin.newCounter", func(_ context.Context, start int64) (*Counter, error) {
	return &Counter{N: start}, nil
})

var (
	// NewShm returns a new shared-memory buffer of n bytes, made by the
	// worker: it crosses back by reference to a master on the same host.
	NewShm = bus.Register("builtin.newShm", func(_ context.Context, n int) (*shm.Buffer, error) {
		return shm.New(n)
	})

	// HoldShm holds a shared-memory buffer until its context ends, and
	// returns its length: a buffer in flight, for tests of kills.
	HoldShm = bus.Register("builtin.holdShm", func(ctx context.Context, b *shm.Buffer) (int, error) {
		<-ctx.Done()
		return b.Len(), ctx.Err()
	})

	// Squares fills a shared-memory buffer of float64s with the squares of
	// their indices, in place, and returns how many it wrote.
	Squares = bus.Register("builtin.squares", func(_ context.Context, b *shm.Buffer) (int, error) {
		v, err := shm.View[float64](b)
		if err != nil {
			return 0, err
		}
		for i := range v {
			v[i] = float64(i) * float64(i)
		}
		return len(v), nil
	})
)
