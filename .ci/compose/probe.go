// Command probe is the master of .ci/compose/run's kills, run in the
// compose cluster: it holds a call on one worker, says so, and waits while
// the script kills a container under it (the worker's NATS server, or the
// worker). The call must fail with bus.ErrWorkerLost; then calls to the
// same worker must go on within a bound, every failure on the way a named
// error. It exits 0 when both held, 1 saying what did not.
//
//	probe --nats URL --worker ID [--within 60s]   (user and password: $PROCESSIONAL_USER, $PROCESSIONAL_PASSWORD)
//
// It is built by file (`go build -o DIR/probe .ci/compose/probe.go`), and
// is no package of the module.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

func main() {
	url := flag.String("nats", "", "the NATS server (or cluster) the master joins")
	id := flag.String("worker", "", "the worker to call")
	within := flag.Duration("within", time.Minute, "how long after the loss calls may fail before they must go on")
	lease := flag.Duration("lease", master.DefaultLease, "the master's lease (heartbeats go at a quarter of it)")
	flag.Parse()
	if *url == "" || *id == "" {
		fmt.Fprintln(os.Stderr, "probe: --nats and --worker are needed")
		os.Exit(2)
	}
	if err := probe(*url, *id, *within, *lease); err != nil {
		fmt.Fprintf(os.Stderr, "probe %s: %v\n", *id, err)
		os.Exit(1)
	}
}

func probe(url, id string, within, lease time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute+within)
	defer cancel()
	opts := []master.Option{master.WithServerID(id), master.WithLease(lease, lease/4), master.WithUserInfo(os.Getenv("PROCESSIONAL_USER"), os.Getenv("PROCESSIONAL_PASSWORD"))}
	s, err := master.Connect(ctx, url, opts...)
	if err != nil {
		return err
	}
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	// builtin.Work reports its progress every 10 ms: its first report
	// says the call runs on the worker.
	held := master.Schedule(ctx, s, builtin.Work, 2*time.Minute)
	select {
	case <-held.ProgressChanged():
	case <-held.Done():
		_, err := held.Wait(ctx)
		return fmt.Errorf("the call ended before it ran: %v", err)
	}
	fmt.Printf("in flight on worker %s (pid %d)\n", id, s.PID())
	_, err = held.Wait(ctx)
	if !errors.Is(err, bus.ErrWorkerLost) {
		return fmt.Errorf("the call in flight ended with %v, not bus.ErrWorkerLost", err)
	}
	fmt.Printf("the call in flight failed: %v\n", err)

	// Then calls go on: on the same Slave while it holds (the worker
	// moved to another server), on a new one once it is lost (the worker
	// started again). Polled: no event says the worker is back.
	lost := time.Now()
	seen := map[string]bool{}
	last := ""
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		err = nil
		if s == nil {
			s, err = master.Connect(cctx, url, opts...)
		}
		if err == nil {
			var n int
			if n, err = master.Invoke(cctx, s, builtin.Sum, []int{1, 2, 3}); err == nil {
				ccancel()
				if n != 6 {
					return fmt.Errorf("sum [1 2 3] = %d", n)
				}
				fmt.Printf("calls go on: worker %s (pid %d) answered %s after the loss\n", id, s.PID(), time.Since(lost).Round(time.Millisecond))
				return nil
			}
			if errors.Is(err, bus.ErrWorkerLost) || errors.Is(err, bus.ErrClosed) {
				s.Close() // this Slave is done: a new one, once the worker answers
				s = nil
			}
		}
		ccancel()
		name, ok := named(err)
		if !ok {
			return fmt.Errorf("a call failed with an unnamed error: %v", err)
		}
		if last = name + ": " + err.Error(); !seen[last] {
			fmt.Printf("a call failed, %s\n", last)
			seen[last] = true
		}
		if time.Since(lost) > within {
			return fmt.Errorf("calls did not go on within %s of the loss; the last error: %s", within, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// named tells which of the product's errors err is: a call to a worker
// that is gone, or not yet back, fails with one of these.
func named(err error) (string, bool) {
	for _, e := range []struct {
		name string
		err  error
	}{
		{"bus.ErrWorkerLost", bus.ErrWorkerLost},
		{"bus.ErrClosed", bus.ErrClosed},
		{"master.ErrConnect", master.ErrConnect},
	} {
		if errors.Is(err, e.err) {
			return e.name, true
		}
	}
	return "", false
}
