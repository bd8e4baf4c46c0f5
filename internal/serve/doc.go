// Package serve is the worker runtime: a [Worker] serves one id's
// subjects on a NATS connection, runs the calls it receives (each behind
// recover, each master's blocking calls in order, concurrent calls at
// once), renews and watches its masters' leases, and holds the objects
// that Refs name. A spawned worker also serves its owner's lane (package
// lane): the owner's calls and heartbeats arrive on it, and their answers
// leave on it. Package worker is its public face, for spawned workers
// and servers; master.Export runs one inside a master, to serve the
// objects the master exports.
//
// The files follow the path of a call: config.go and worker.go (Serve,
// Close, Abort), call.go (taking a call in and running it), queue.go (a
// master's blocking calls), reply.go and chunks.go (what goes back, and
// what arrives or leaves in chunks), lane.go (the lane's reader, which
// runs the queue a call starts itself, and its relief), lease.go
// (heartbeats and the verbs of the control subjects), json.go (the JSON endpoints), diag.go
// (pending calls, stacks, counts). The objects are objects.go (the
// table), ops.go (the operations on it, whose arguments wire defines)
// and members.go (reflection on the objects).
package serve
