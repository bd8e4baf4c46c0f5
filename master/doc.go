// Package master is what a user of processional calls: it runs registered
// functions in the calling goroutine, in new goroutines, on slave threads
// (one OS thread, tasks in order) and on worker processes, with one way to
// call and one future for the result. A worker the master spawns is
// reached on a socketpair the two share, the lane (see [WithoutLane]);
// one it connects to, over NATS, which also carries discovery, inspection
// and the calls of other masters and hosts.
//
//	t := master.Go(ctx, func(ctx context.Context) (int, error) { return 42, nil })
//	s, err := master.Spawn(ctx)                          // this binary, as a worker
//	n, err := master.Invoke(ctx, s, Sum, []int{1, 2, 3}) // blocking
//	task := master.Schedule(ctx, s, Sum, xs)             // background, in order
//	conc := master.Thread(ctx, s, Sum, xs)               // concurrent on the worker
//
// The package-level [Spawn] runs on a default master, which the first
// Spawn starts and the last of its slaves to close closes; [New] makes a
// master of one's own, with options, closed by its Close.
//
// Every executor returns a [Task]: Wait, Done, Available, Cancel. Workers
// are resources: a [Master] heartbeats each one it holds, a worker whose
// master dies (the end of its lane tells a spawned one at once) or stops
// heartbeating tears down, and a worker that dies or stops answering
// fails every pending task with bus.ErrWorkerLost. See docs/lifetimes.md
// for each case and its timing, and docs/subjects.md for which road a
// call takes.
package master
