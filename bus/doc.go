// Package bus is processional's wire contract: subject names, message
// envelopes, the msgpack codec, the error envelope and the function
// registry.
//
// A function that may run in another process is registered once, at package
// level, so that the master binary and the worker binary both hold it:
//
//	var Sum = bus.Register("sum", func(ctx context.Context, xs []int) (int, error) {
//		n := 0
//		for _, x := range xs {
//			n += x
//		}
//		return n, nil
//	})
//
// Registration checks that the argument and result types can travel and
// panics at start-up, naming the function and the type, when they cannot.
//
// The package holds types and rules only: it opens no connection, and its
// tests need no server. The only package-level state is the registry of
// functions and of sentinel errors, written during init.
package bus
