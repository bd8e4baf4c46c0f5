package serve

import "github.com/processional/processional/internal/lane"

// ServiceName is the NATS micro service name every worker registers.
const ServiceName = "processional"

// ServiceVersion is the version workers report to `nats micro info`.
const ServiceVersion = "0.1.0"

// Config configures [Serve]; its zero value is a worker with a random id.
// Package worker's options check each field with a message of their own;
// Serve checks the ids again, for its other callers (master.Export).
type Config struct {
	ID         string // the worker's id; empty means a random one
	Owner      string // the master that spawned it, which alone may detach or persist it
	MaxValue   uint64 // the largest value a call or reply may carry; 0 means chunks.DefaultLimit
	Pool       string // the pool whose queue group it joins, if any
	MaxPending int64  // calls held at once before refusing; 0 means DefaultMaxPending
	// Lane, if not nil, is the worker's end of the lane to its owner,
	// which spawned it: the owner's calls and heartbeats come on it, and
	// their answers go back on it.
	Lane lane.HalfCloser
	// OnLaneLost is called, from the lane's reader, when the lane ends
	// other than by the owner letting go of it after a detach or persist:
	// the owner died, or broke the lane. Nil closes Lapsed, as the
	// owner's lease lapsing does.
	OnLaneLost func(error)
}

// DefaultMaxPending is the number of calls a worker holds, accepted and
// not finished (queued or running), before it refuses more with
// [bus.ErrOverloaded]. It is above the 100 000 calls the pipelined bench
// row sends at once.
const DefaultMaxPending = 1 << 18
