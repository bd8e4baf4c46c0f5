// Package bus is what a user of processional registers and catches: the
// functions that may run in another process ([Register],
// [RegisterConstructor]), the sentinel errors that survive the trip
// ([RegisterError] and processional's own), and the errors a remote call
// fails with ([RemoteError], [PanicError]). The wire itself (subjects,
// envelopes, the codec) is internal.
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
// The package opens no connection, and its tests need no server. The only
// package-level state is the registry of functions and of sentinel
// errors, written during init.
package bus
