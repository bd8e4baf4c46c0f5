// Package cli holds what the processional binaries share on their command
// lines: the flags that join a NATS server ([ConnFlags]) and the worker
// command ([Worker]), run by `processional worker` and by the worker-only
// `processional-worker`.
//
// It imports no nats-server, so that a worker-only binary built on it
// links none.
package cli
