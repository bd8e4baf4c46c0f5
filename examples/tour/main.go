// Command tour is the README's tour in code: one registered function run
// in a goroutine, on a slave thread and in a spawned worker process, with
// the three verbs and one future. e2e's TestTour builds and runs it.
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
	"github.com/processional/processional/worker"
)

// Registered at package level, so that the master and its worker (this
// same binary, re-executed) both hold them.
var (
	Sum = bus.Register("sum", func(ctx context.Context, xs []int) (int, error) {
		n := 0
		for _, x := range xs {
			n += x
		}
		return n, nil
	})
	Sleep = bus.Register("sleep", func(ctx context.Context, d time.Duration) (struct{}, error) {
		select {
		case <-time.After(d):
			return struct{}{}, nil
		case <-ctx.Done():
			return struct{}{}, ctx.Err()
		}
	})
)

func main() {
	if worker.Main() { // in a spawned worker: serve, then return true
		return
	}
	ctx := context.Background()

	// A goroutine with a result.
	n, err := master.Go(ctx, func(ctx context.Context) (int, error) { return 42, nil }).Wait(ctx)
	fmt.Println("goroutine:", n, err)

	// A slave thread: one OS thread, its tasks in submission order.
	th := master.NewThread()
	defer th.Close()
	n, err = master.Invoke(ctx, th, Sum, []int{1, 2, 3})
	fmt.Println("slave thread:", n, err)

	// A slave process: this binary re-executed as a worker, reached on
	// a socket of its own; an embedded NATS server, started with the
	// first spawn, carries the rest.
	s, err := master.Spawn(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close() // the worker finishes what it was sent, then exits

	n, err = master.Invoke(ctx, s, Sum, []int{1, 2, 3}) // blocking
	task := master.Schedule(ctx, s, Sum, []int{4, 5})   // background, in order
	nap := master.Thread(ctx, s, Sleep, time.Hour)      // concurrent on the worker
	fmt.Println("worker:", n, err)
	n, err = task.Wait(ctx)
	fmt.Println("scheduled:", n, err)
	nap.Cancel() // cancels the function's ctx on the worker
	_, err = nap.Wait(ctx)
	fmt.Println("cancelled:", err)
}
