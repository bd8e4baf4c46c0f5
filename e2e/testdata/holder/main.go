// Command holder is a master that spawns one worker (itself), prints the
// worker's pid, and waits to be killed: the e2e tests kill it with SIGKILL
// and check that its worker does not outlive it.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/master"
	"github.com/processional/processional/worker"
)

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
	pid, err := master.Invoke(ctx, s, builtin.Getpid, struct{}{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// A call in flight when the master dies.
	master.Schedule(ctx, s, builtin.Sleep, time.Hour)
	fmt.Println(pid)
	time.Sleep(time.Hour)
}
