// Package worker is the worker runtime: it serves a worker's subject (and,
// in a spawned worker, the lane to the master that spawned it), runs the
// calls it receives, keeps each master's blocking calls in order, and
// tears down when its master closes it.
//
// A binary becomes its own worker with one line at the top of main:
//
//	func main() {
//		if worker.Main() {
//			return
//		}
//		// … the master's program
//	}
//
// [Main] returns false at once in a process that was not spawned as a
// worker. [Serve] runs a worker on a connection of the caller's, for a
// worker that joins a NATS server by itself.
//
// Every call runs in a goroutine of the worker's, behind recover, with a
// context that ends when the caller cancels, when its deadline passes, or
// when the worker stops. A worker is a NATS micro service named
// "processional": `nats micro ls` lists it.
package worker
