package worker

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/internal/serve"
)

// ServiceName is the NATS micro service name every worker registers:
// `nats micro ls` lists workers under it.
const ServiceName = serve.ServiceName

// ServiceVersion is the version workers report to `nats micro info`.
const ServiceVersion = serve.ServiceVersion

// Worker serves calls on one NATS connection. Its methods are safe for
// concurrent use.
type Worker struct {
	w *serve.Worker
}

// Serve starts a worker on nc and returns once it is subscribed. The
// worker runs until [Worker.Close]; nc stays the caller's to close, after
// Close. An option that refuses its value gives an error wrapping
// [ErrConfig].
func Serve(nc *nats.Conn, opts ...Option) (*Worker, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if nc == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrConfig)
	}
	w, err := serve.Serve(nc, o)
	if err != nil {
		return nil, err
	}
	return &Worker{w}, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.w.ID() }

// Stopping is closed when the worker's owner asked it to close, after the
// owner's queued calls ran. The caller then calls [Worker.Close].
func (w *Worker) Stopping() <-chan struct{} { return w.w.Stopping() }

// Lapsed is closed when the lease of the worker's owner (see [WithOwner])
// lapsed: its master is gone. The caller then calls [Worker.Abort].
func (w *Worker) Lapsed() <-chan struct{} { return w.w.Lapsed() }

// Persistent reports whether the worker's owner detached it or made it
// persistent: its owner's lease and death no longer stop it.
func (w *Worker) Persistent() bool { return w.w.Persistent() }

// Close stops taking calls, lets the queued and running ones finish and
// reply, then stops the micro service. It blocks until then, is idempotent
// and safe for concurrent use. Calls that arrive while it closes fail with
// [bus.ErrClosed].
func (w *Worker) Close() error { return w.w.Close() }

// Abort cancels every running call's context, then closes the worker as
// [Worker.Close] does.
func (w *Worker) Abort() error { return w.w.Abort() }

// Leases returns the masters that hold a lease on the worker, with the
// time since their last heartbeat.
func (w *Worker) Leases() map[string]time.Duration { return w.w.Leases() }

// PendingCall is a call the worker has queued or is running, as the
// pending verb (`processional pending`) lists it.
type PendingCall struct {
	Master   string        `json:"master"`
	ID       uint64        `json:"id"`
	Function string        `json:"function"`
	Kind     string        `json:"kind"`  // call, thread or stream
	State    string        `json:"state"` // queued or running
	Age      time.Duration `json:"-"`
	AgeMS    int64         `json:"age_ms"`
	// Progress is the call's latest report (bus.Progress), as JSON; nil
	// when it reported none.
	Progress json.RawMessage `json:"progress,omitempty"`
}

// Pending lists the calls the worker has queued or is running, oldest
// first.
func (w *Worker) Pending() []PendingCall {
	in := w.w.Pending()
	out := make([]PendingCall, len(in))
	for i, p := range in {
		out[i] = PendingCall(p)
	}
	return out
}

// FunctionStat counts the calls a worker ran of one function, as `nats
// micro stats` shows them (the data of the calls endpoint).
type FunctionStat struct {
	Requests       int64         `json:"num_requests"`
	Errors         int64         `json:"num_errors"`
	ProcessingTime time.Duration `json:"processing_time"`
	AverageTime    time.Duration `json:"average_processing_time"`
}

// FunctionStats returns the counts of the calls the worker ran, by NATS
// or on its lane, by function; and under "(malformed)" the messages on
// its call subject that were no call it could read. `nats micro stats`
// shows them as the data of the calls endpoint.
func (w *Worker) FunctionStats() map[string]FunctionStat {
	in := w.w.FunctionStats()
	out := make(map[string]FunctionStat, len(in))
	for k, v := range in {
		out[k] = FunctionStat(v)
	}
	return out
}

// ObjectInfo describes an object the worker holds for its masters'
// references, as the refs verb (`processional refs`) lists it.
type ObjectInfo struct {
	ID       uint64           `json:"id"`
	Type     string           `json:"type"`
	Holders  map[string]int64 `json:"holders"` // holder id → references it holds
	Age      time.Duration    `json:"-"`
	AgeMS    int64            `json:"age_ms"`
	InFlight int64            `json:"inflight"` // operations running on it now
}

// Objects lists the objects the worker holds, by id.
func (w *Worker) Objects() []ObjectInfo {
	in := w.w.Objects()
	out := make([]ObjectInfo, len(in))
	for i, o := range in {
		out[i] = ObjectInfo(o)
	}
	return out
}
