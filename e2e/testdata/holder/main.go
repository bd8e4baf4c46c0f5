// Command holder is a master that spawns one worker (itself), has it start
// a child of its own, sets a long call running on it, puts shared memory in
// flight both ways, prints the worker's pid, the grandchild's and the
// segments' names, and waits to be killed: the e2e tests kill it with
// SIGKILL and check that neither process outlives it, and that the
// segments are swept.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
	"github.com/processional/processional/shm"
	"github.com/processional/processional/worker"
)

// Grandchild starts a long-lived child process of the worker.
var Grandchild = bus.Register("holder.grandchild", func(context.Context, struct{}) (int, error) {
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go cmd.Wait()
	return cmd.Process.Pid, nil
})

// EnvLease names the variable that, set to a duration, gives the master
// that lease instead of the default one: a test of another way the worker
// learns of its master's death sets it long, so that a lease lapsing on a
// loaded machine (the worker then exits, leaving its child) cannot pass
// for that way failing.
const EnvLease = "HOLDER_LEASE"

// spawn spawns the worker, from a master with the lease $HOLDER_LEASE
// gives, else from the default master.
func spawn(ctx context.Context) (*master.Slave, error) {
	v := os.Getenv(EnvLease)
	if v == "" {
		return master.Spawn(ctx)
	}
	lease, err := time.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("$%s: %w", EnvLease, err)
	}
	m, err := master.New(ctx, master.WithLease(lease, lease/4))
	if err != nil {
		return nil, err
	}
	return m.Spawn(ctx)
}

func main() {
	if worker.Main() {
		return
	}
	ctx := context.Background()
	s, err := spawn(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	grandchild, err := master.Invoke(ctx, s, Grandchild, struct{}{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// A call in flight when the master dies.
	master.Schedule(ctx, s, builtin.Sleep, time.Hour)
	// Shared memory in flight: one of ours, held by a running call, one of
	// the worker's, held here.
	mine, err := shm.New(1 << 16)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	held := master.Thread(ctx, s, builtin.HoldShm, mine)
	theirs, err := master.Thread(ctx, s, builtin.NewShm, 1<<16).Wait(ctx) // beside the sleep
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	a, _, _, _ := mine.Ref()
	b, _, _, _ := theirs.Ref()
	fmt.Println(s.PID(), grandchild, a, b)
	defer runtime.KeepAlive(held)
	time.Sleep(time.Hour)
}
