// Command faultmaster is a master on a NATS server it is given, with a
// lease it is given: it spawns one worker (itself), sets a long call
// running on it, waits until the worker holds its lease, prints the
// worker's pid and waits to be killed. The fault
// tests stop it (SIGSTOP) and take the server away: its worker, which no
// longer hears from it, must tear down on its own once the lease lapses.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
	"github.com/processional/processional/worker"
)

func main() {
	if worker.Main() {
		return
	}
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: faultmaster URL TOKEN LEASE")
		os.Exit(2)
	}
	lease, err := time.ParseDuration(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	m, err := master.New(ctx, master.WithNATS(os.Args[1]), master.WithToken(os.Args[2]), master.WithLease(lease, lease/4))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := m.Spawn(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	master.Thread(ctx, s, builtin.Sleep, time.Hour)
	if _, err := master.Invoke(ctx, s, builtin.Getpid, struct{}{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The worker holds our lease once our first heartbeat has come: only
	// then can it lapse.
	for {
		msg, err := m.Conn().Request(wire.ControlSubject(s.ID(), "leases"), nil, 5*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var leases map[string]int64
		if json.Unmarshal(msg.Data, &leases) == nil {
			if _, ok := leases[m.ID()]; ok {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println(s.PID())
	time.Sleep(time.Hour)
}
