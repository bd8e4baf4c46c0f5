package bus_test

import (
	"context"
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
