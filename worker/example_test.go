package worker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/embedded"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/worker"
)

// Double is registered at package level, so that the worker's binary holds
// it under the name the master calls.
var Double = bus.Register("worker_test.example.double", func(ctx context.Context, x int) (int, error) {
	return 2 * x, nil
})

func ExampleServe() {
	srv, err := embedded.Start(embedded.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()
	wc, err := srv.Connect("worker")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer wc.Close()

	w, err := worker.Serve(wc, worker.WithID("w-example"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()

	// The master's side of one call, by hand: a call envelope on the
	// worker's subject, a reply envelope back.
	mc, err := srv.Connect("master")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer mc.Close()
	req, err := wire.AppendCall(nil, &wire.Call{Kind: wire.KindCall, Master: "m-example", ID: 1,
		Function: Double.Name(), ArgType: "int"}, 21)
	if err != nil {
		fmt.Println(err)
		return
	}
	msg, err := mc.Request(wire.CallSubject(w.ID()), req, 5*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, raw, remote, err := wire.DecodeReply(msg.Data)
	if err != nil || remote != nil {
		fmt.Println(remote, err)
		return
	}
	var n int
	if err := codec.Unmarshal(raw, &n); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(wire.CallSubject(w.ID()), n)
	// Output: proc.w-example.call 42
}
