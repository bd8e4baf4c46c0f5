//go:build linux

package e2e

import (
	"testing"
	"time"

	"github.com/processional/processional/internal/bench"
	"github.com/processional/processional/internal/proctest"
)

// TestLoad runs 8 master processes, each with 1,000 calls in flight on one
// `processional server`, for a few seconds: no call may be lost, fail or
// hang. The figures are logged, never asserted: speed is
// the bench's business (`processional bench --only load`).
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 9 processes under load")
	}
	// Heartbeats reach the server's worker behind the calls queued on its
	// connection: race-built processes on 2 cores take up to a second, the
	// default lease, to drain 8,000 of them (a tenth of that without
	// -race). Under -race the masters hold a longer lease instead.
	const inFlight = 1000
	var lease time.Duration
	if raceEnabled {
		lease = 5 * time.Second
	}
	ctx := testCtx(t)
	srv := startServer(t, binProcessional)
	l, err := bench.StartLoad(ctx, bench.LoadOptions{
		Binary: binProcessional, URL: srv.url, Token: srv.token,
		Masters: 8, InFlight: inFlight, Lease: lease,
		// Hung means still pending this long after the window: far more
		// than the slowest call takes on a loaded machine.
		Drain: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	pids := l.PIDs()
	defer func() {
		l.Close()
		for _, pid := range pids {
			if !proctest.Gone(pid, 5*time.Second) {
				t.Errorf("load master pid %d outlived the test", pid)
			}
		}
	}()
	r, err := l.Run(ctx, false, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.Masters != 8 || r.InFlight != inFlight {
		t.Errorf("ran %d masters × %d in flight, want 8 × %d", r.Masters, r.InFlight, inFlight)
	}
	if r.Sent == 0 || r.OK != r.Sent {
		t.Errorf("%d calls sent, %d ok: want every call sent to succeed", r.Sent, r.OK)
	}
	if r.Failed != 0 || r.Hung != 0 || r.Lost != 0 {
		t.Errorf("%d failed, %d hung, %d lost: want none", r.Failed, r.Hung, r.Lost)
	}
	// The server still answers, each master's calls in order, after the
	// load: a second, short run.
	r, err = l.Run(ctx, false, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent == 0 || r.OK != r.Sent || r.Failed+r.Hung+r.Lost != 0 {
		t.Errorf("after the load: %s", r)
	}
}
