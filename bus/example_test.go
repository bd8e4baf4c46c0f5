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

	// What a worker does with a call envelope: look the function up by
	// name and invoke it with the encoded argument.
	f, _ := bus.Lookup("bus_test.example.sum")
	arg, _ := bus.Marshal([]int{4, 5, 6})
	res, err := f.Invoke(ctx, arg, Sum.ArgTypeName())
	fmt.Println(res, err)

	// An argument of the wrong type is refused with a clear error.
	arg, _ = bus.Marshal("seven")
	_, err = f.Invoke(ctx, arg, "string")
	fmt.Println(errors.Is(err, bus.ErrArgumentType))
	// Output:
	// bus_test.example.sum 6 <nil>
	// 15 <nil>
	// true
}
