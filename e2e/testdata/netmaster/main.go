// Command netmaster is a master driven line by line on stdin, for the
// multi-host e2e tests: it runs in a network namespace of its own and
// answers each command with one line, "ok ..." or "err ...".
//
//	invoke W      getpid on worker W
//	proxy W       wrap a counter on worker W, add 2 to it twice
//	map           Map 200 items over pool "p"
//	hold W        start a one-hour call on W, answer once W runs it; "wait" waits for it
//	wait          the outcome of the held call
//	leases W      how many masters hold a lease on worker W
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
)

func main() {
	if len(os.Args) != 3 && len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: netmaster URLS TOKEN [TLSCERT TLSKEY TLSCA]")
		os.Exit(2)
	}
	ctx := context.Background()
	opts := []master.Option{master.WithToken(os.Args[2])}
	if len(os.Args) == 6 {
		opts = append(opts, master.WithTLS(os.Args[3], os.Args[4], os.Args[5]))
	}
	m, err := master.New(ctx, append([]master.Option{master.WithNATS(os.Args[1])}, opts...)...)
	if err != nil {
		fmt.Println("err", err)
		os.Exit(1)
	}
	defer m.Close()
	fmt.Println("ok ready")
	var held *master.Task[time.Duration]
	slaves := map[string]*master.Slave{}
	slave := func(id string) (*master.Slave, error) {
		if s := slaves[id]; s != nil {
			select {
			case <-s.Exited():
			default:
				return s, nil
			}
		}
		s, err := master.Connect(ctx, os.Args[1], append(opts, master.WithServerID(id))...)
		if err != nil {
			return nil, err
		}
		slaves[id] = s
		return s, nil
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		out, err := func() (string, error) {
			switch f[0] {
			case "invoke":
				s, err := slave(f[1])
				if err != nil {
					return "", err
				}
				pid, err := master.Invoke(cctx, s, builtin.Getpid, struct{}{})
				return fmt.Sprint(pid), err
			case "proxy":
				s, err := slave(f[1])
				if err != nil {
					return "", err
				}
				c, err := master.Wrap(cctx, s, builtin.NewCounter, 40)
				if err != nil {
					return "", err
				}
				defer c.Close()
				master.Method[int64](cctx, c, "Add", 1).Wait(cctx)
				n, err := master.Method[int64](cctx, c, "Add", 1).Wait(cctx)
				return fmt.Sprint(n), err
			case "map":
				p, err := m.Pool(cctx, "p")
				if err != nil {
					return "", err
				}
				defer p.Close()
				items := make([][]int, 200)
				for i := range items {
					items[i] = []int{i, 1}
				}
				res, errs := master.Map(cctx, p, builtin.Sum, items, master.Idempotent())
				if err := errors.Join(errs...); err != nil {
					return "", err
				}
				for i, r := range res {
					if r != i+1 {
						return "", fmt.Errorf("item %d: %d", i, r)
					}
				}
				return fmt.Sprintf("200 items, members %d", len(p.Members())), nil
			case "hold":
				s, err := slave(f[1])
				if err != nil {
					return "", err
				}
				held = master.Schedule(ctx, s, builtin.Sleep, time.Hour)
				// Held once the worker says it runs it: only then may
				// the test cut it off or kill it.
				for {
					msg, err := m.Conn().RequestWithContext(cctx, wire.ControlSubject(f[1], "pending"), nil)
					if err != nil {
						return "", err
					}
					var calls []struct{ Master, Function, State string }
					if err := json.Unmarshal(msg.Data, &calls); err != nil {
						return "", err
					}
					for _, c := range calls {
						if c.Master == s.Master().ID() && c.Function == builtin.Sleep.Name() && c.State == "running" {
							return "held", nil
						}
					}
					select {
					case <-held.Done():
						_, err := held.Wait(ctx)
						return "", fmt.Errorf("the held call ended before it was seen running: %v", err)
					case <-cctx.Done():
						return "", fmt.Errorf("the held call was never seen running: %w", cctx.Err())
					case <-time.After(10 * time.Millisecond):
					}
				}
			case "leases":
				msg, err := m.Conn().RequestWithContext(cctx, wire.ControlSubject(f[1], "leases"), nil)
				if err != nil {
					return "", err
				}
				var leases map[string]int64
				if err := json.Unmarshal(msg.Data, &leases); err != nil {
					return "", err
				}
				return fmt.Sprint(len(leases)), nil
			case "wait":
				start := time.Now()
				_, err := held.Wait(cctx)
				if errors.Is(err, bus.ErrWorkerLost) {
					return fmt.Sprintf("lost after %s", time.Since(start).Round(time.Millisecond)), nil
				}
				return "", fmt.Errorf("the held call ended with %v", err)
			}
			return "", fmt.Errorf("unknown command %q", f[0])
		}()
		cancel()
		if err != nil {
			fmt.Println("err", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Println("ok", out)
		}
	}
}
