package bench

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/processional/processional/master"
	"github.com/processional/processional/server"
)

func TestHistogram(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 31, 32, 33, 63, 64, 1000, time.Microsecond * 77, time.Second, time.Hour} {
		mid := bucketMid(bucket(d))
		if diff := (mid - d).Abs(); float64(diff) > float64(d)/32+1 {
			t.Errorf("%s lands in bucket %d, whose middle %s is more than 1/32 off", d, bucket(d), mid)
		}
	}
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Fatal("an empty histogram has a median")
	}
	for i := range 1000 {
		h.add(time.Duration(i+1) * time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 500 * time.Millisecond, 0.99: 990 * time.Millisecond, 1: time.Second} {
		if got := h.quantile(q); (got - want).Abs() > want/32 {
			t.Errorf("quantile %v = %s, want %s", q, got, want)
		}
	}
}

// runLoad counts every call once: ok, failed, or hung when it outlives
// the drain.
func TestRunLoadCounts(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	f := func(ctx context.Context, i int64) error {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		switch {
		case n == 50: // one call hangs until cancelled
			<-ctx.Done()
			return ctx.Err()
		case n%10 == 0:
			return errors.New("boom")
		}
		time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
		return nil
	}
	start := time.Now()
	r := runLoad(context.Background(), f, 20, 100*time.Millisecond, 200*time.Millisecond)
	if took := time.Since(start); took > 30*time.Second { // not a speed check: it must not wait for the hung call
		t.Errorf("runLoad took %s: it waited for the hung call", took)
	}
	if r.Hung != 1 || r.Failed == 0 || r.OK == 0 || r.Sent != r.OK+r.Failed+r.Hung || r.FirstError != "boom" {
		t.Fatalf("report %+v: want 1 hung, some failed, some ok, all counted", r)
	}
	if int64(calls) != r.Sent {
		t.Fatalf("%d calls made, %d counted sent", calls, r.Sent)
	}
	var n int64
	for _, b := range r.Hist {
		n += b[1]
	}
	if n != r.OK+r.Failed {
		t.Fatalf("histogram counts %d calls, want the %d that ended", n, r.OK+r.Failed)
	}
}

// The load's calls through master and worker code, in one process under
// the race detector: two masters, many calls in flight each, one server.
func TestRunLoadInProcess(t *testing.T) {
	srv, err := server.Start(server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	reps := make([]loadReport, 2)
	for k := range reps {
		s, err := master.Connect(ctx, srv.URL(), master.WithToken(srv.Token()))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[k] = runLoad(ctx, func(ctx context.Context, i int64) error {
				n, err := master.Invoke(ctx, s, Inc, int(i))
				if err == nil && n != int(i)+1 {
					t.Errorf("inc(%d) = %d", i, n)
				}
				return err
			}, 200, 300*time.Millisecond, 10*time.Second)
		}()
	}
	wg.Wait()
	for k, r := range reps {
		if r.Sent == 0 || r.OK != r.Sent || r.Failed+r.Hung != 0 {
			t.Errorf("master %d: %+v", k, r)
		}
	}
}
