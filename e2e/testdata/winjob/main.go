// Command winjob is a master for the Windows tests under Wine: it spawns
// one worker (itself), has it start a child of its own (itself again,
// with the argument "grandchild", which sleeps), optionally persists the
// worker (argument "persist"), prints "ready", and waits to be killed.
// The tests kill it and check that its Job Object takes the worker and
// the grandchild along, unless the worker was persisted.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
	"github.com/processional/processional/worker"
)

// Grandchild starts a long-lived child process of the worker.
var Grandchild = bus.Register("winjob.grandchild", func(context.Context, struct{}) (int, error) {
	cmd := exec.Command(os.Args[0], "grandchild")
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go cmd.Wait()
	return cmd.Process.Pid, nil
})

func main() {
	if slices.Contains(os.Args[1:], "grandchild") {
		time.Sleep(time.Hour)
		return
	}
	if worker.Main() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := master.Spawn(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "winjob:", err)
		os.Exit(1)
	}
	if _, err := master.Invoke(ctx, s, Grandchild, struct{}{}); err != nil {
		fmt.Fprintln(os.Stderr, "winjob:", err)
		os.Exit(1)
	}
	if slices.Contains(os.Args[1:], "persist") {
		if err := s.Persist(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "winjob: persist:", err)
			os.Exit(1)
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Hour)
}
