package master_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

// collect ranges over a stream, and returns its items and its error.
func collect[T any](seq func(func(T, error) bool)) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

// TestStreamEveryExecutor consumes builtin.Count on every executor: in
// the caller, a goroutine, a slave thread, a spawned worker on its lane
// and one without (by NATS). Items arrive in order, all of them, with a
// window smaller than the stream.
func TestStreamEveryExecutor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := newMaster(t)
	th := master.NewThread()
	defer th.Close()
	want := make([]int, 200)
	for i := range want {
		want[i] = i + 1
	}
	for _, tc := range []struct {
		name string
		ex   master.Executor
	}{
		{"caller", master.InCaller},
		{"goroutine", master.InGoroutine},
		{"slave thread", th},
		{"worker, lane", spawn(t, m)},
		{"worker, NATS", spawn(t, m, master.WithoutLane())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := collect(master.Stream(ctx, tc.ex, builtin.Count, 200, master.WithWindow(7, 1<<20)))
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("count 200: %d items %v…, %v; want 1…200", len(got), got[:min(len(got), 5)], err)
			}
			got, err = collect(master.Stream(ctx, tc.ex, builtin.Count, -1))
			if !errors.Is(err, builtin.ErrNegativeCount) || len(got) != 0 {
				t.Fatalf("count -1: %v, %v; want ErrNegativeCount", got, err)
			}
			n := 0
			for v, err := range master.Stream(ctx, tc.ex, builtin.Count, 1000) {
				if err != nil {
					t.Fatal(err)
				}
				n++
				if v == 3 {
					break
				}
			}
			if n != 3 {
				t.Fatalf("break at 3: %d items", n)
			}
		})
	}
}

var _ = bus.ErrIsStream
