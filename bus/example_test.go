package bus_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/processional/processional/bus"
)

// Sum is registered at package level, so that the master's binary and the
// worker's binary both hold it under the same name.
var Sum = bus.Register("bus_test.example.sum", func(ctx context.Context, xs []int) (int, error) {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n, nil
})

func ExampleRegister() {
	ctx := context.Background()

	// A typed call, here in the calling goroutine.
	n, err := Sum.Call(ctx, []int{1, 2, 3})
	fmt.Println(Sum.Name(), n, err)

	// Output:
	// bus_test.example.sum 6 <nil>
}

// ErrEmpty is registered at package level, in the master's binary and the
// worker's alike, under a name unique to the program.
var ErrEmpty = bus.RegisterError("bus_test.example.ErrEmpty", errors.New("empty input"))

// Mean fails with an error that wraps ErrEmpty when it is given nothing.
var Mean = bus.Register("bus_test.example.mean", func(ctx context.Context, xs []float64) (float64, error) {
	if len(xs) == 0 {
		return 0, fmt.Errorf("mean: %w", ErrEmpty)
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs)), nil
})

func ExampleRegisterError() {
	// Called in this process, Mean's error is the one it returned.
	_, err := Mean.Call(context.Background(), nil)
	fmt.Println(err, errors.Is(err, ErrEmpty))

	// Called on a worker (master.Invoke), the error reaches the master as a
	// *RemoteError like this one, decoded from the worker's reply: bus
	// starts no worker, master's Invoke example does. It carries the
	// error's type and message, and the names of the registered sentinels
	// it wrapped. The names are what travel, which is why both binaries
	// register the sentinel under the same one; errors.Is looks them up on
	// the master's side.
	var remote error = &bus.RemoteError{
		Type:      fmt.Sprintf("%T", err),
		Message:   err.Error(),
		Worker:    "w-1",
		Function:  Mean.Name(),
		Sentinels: []string{"bus_test.example.ErrEmpty"},
	}
	fmt.Println(remote)
	fmt.Println(errors.Is(remote, ErrEmpty))
	// Output:
	// mean: empty input true
	// worker w-1: bus_test.example.mean: mean: empty input
	// true
}
