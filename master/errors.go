package master

import "errors"

// Errors of the master. Remote failures arrive as [*bus.RemoteError]; the
// sentinels shared by both ends ([bus.ErrClosed], [bus.ErrWorkerLost],
// [bus.ErrUnknownFunction], …) live in package bus.
var (
	// ErrBadCall: a nil function, nil executor or zero-value handle.
	ErrBadCall = errors.New("processional: bad call")
	// ErrSpawn wraps every failure to start a worker process.
	ErrSpawn = errors.New("processional: cannot spawn worker")
	// ErrNoHello: the spawned process exited or timed out without saying
	// hello; its main must call worker.Main() first.
	ErrNoHello = errors.New("processional: worker never said hello")
	// ErrConfig wraps every invalid option.
	ErrConfig = errors.New("processional: invalid configuration")
	// ErrConnect: the master cannot connect to its NATS server; the
	// nats.go error is wrapped too.
	ErrConnect = errors.New("processional: cannot connect to NATS")
)
