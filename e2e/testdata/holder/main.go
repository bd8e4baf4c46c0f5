// Command holder is a master that spawns one worker (itself), has it start
// a child of its own, sets a long call running on it, prints the worker's
// pid and the grandchild's, and waits to be killed: the e2e tests kill it
// with SIGKILL and check that neither outlives it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
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

func main() {
	if worker.Main() {
		return
	}
	ctx := context.Background()
	s, err := master.Spawn(ctx)
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
	fmt.Println(s.PID(), grandchild)
	time.Sleep(time.Hour)
}
