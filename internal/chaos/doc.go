// Package chaos is the soak behind `processional chaos`: a NATS cluster of
// three servers, CLI workers, and masters that spawn workers of their own,
// under a continuous mixed load, while processes are killed, stopped and
// cut off at random; it checks processional's promises as it goes (every
// task ends with its own result or a named error, in time; nothing is
// orphaned or leaked) and sums the run up in one JSON line.
//
// [Run] is the orchestrator; [RunMaster] is the master role it starts in
// processes of their own (the same binary, re-executed). The functions the
// load calls are registered here, so that every binary that imports this
// package serves them. It runs on Linux alone (/proc, network
// namespaces, signals). See docs/chaos.md.
package chaos
