package serve

import (
	"encoding/json"
	"runtime"
	"sort"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/processional/processional/internal/wire"
)

// PendingCall describes a call the worker has queued or is running, for
// diagnosis.
type PendingCall struct {
	Master   string        `json:"master"`
	ID       uint64        `json:"id"`
	Function string        `json:"function"`
	Kind     string        `json:"kind"`  // call, thread or stream
	State    string        `json:"state"` // queued or running
	Age      time.Duration `json:"-"`
	AgeMS    int64         `json:"age_ms"`
	// Progress is the call's latest report (bus.Progress), as JSON.
	Progress json.RawMessage `json:"progress,omitempty"`
}

// Pending lists the calls the worker has queued or is running, oldest
// first.
func (w *Worker) Pending() []PendingCall {
	now := time.Now()
	var out []PendingCall
	add := func(cl *call, state string) {
		age := now.Sub(w.born.Add(cl.since))
		out = append(out, PendingCall{Master: cl.key.master, ID: cl.key.id, Function: cl.name, Kind: cl.kind.String(), State: state, Age: age, AgeMS: age.Milliseconds(), Progress: cl.progressJSON()})
	}
	w.mu.Lock()
	for _, q := range w.masters {
		if q.current != nil {
			add(q.current, "running")
		}
		for _, list := range [][]*call{q.batch, q.items} {
			for _, cl := range list {
				if cl != nil && cl != q.current && cl.kind != wire.KindClose {
					add(cl, "queued")
				}
			}
		}
	}
	for _, cl := range w.threads {
		add(cl, "running")
	}
	w.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Age > out[j].Age })
	return out
}

func (w *Worker) pendingVerb(req micro.Request) {
	out := w.Pending()
	if out == nil {
		out = []PendingCall{}
	}
	req.RespondJSON(out)
}

// callsVerb answers the counts of the calls the worker ran, by function
// (FunctionStats), in JSON.
func (w *Worker) callsVerb(req micro.Request) {
	req.RespondJSON(w.FunctionStats())
}

// stackVerb answers the stacks of all the worker's goroutines: what a
// worker that hangs is doing.
func (w *Worker) stackVerb(req micro.Request) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 64<<20 {
			req.Respond(buf[:n])
			return
		}
		buf = make([]byte, 2*len(buf))
	}
}

// FunctionStat counts the calls of one function (or object operation) a
// worker ran, as `nats micro stats` shows them in the call endpoint's data.
type FunctionStat struct {
	Requests       int64         `json:"num_requests"`
	Errors         int64         `json:"num_errors"`
	ProcessingTime time.Duration `json:"processing_time"`
	AverageTime    time.Duration `json:"average_processing_time"`
}

type functionCounter struct {
	requests, errors, nanos atomic.Int64
}

// malformed is the name FunctionStats counts the messages under that
// were no call the worker could read: no function has it.
const malformed = "(malformed)"

// count records one call of function that took d.
func (w *Worker) count(function string, d time.Duration, err error) {
	v, ok := w.fnStats.Load(function)
	if !ok {
		v, _ = w.fnStats.LoadOrStore(function, new(functionCounter))
	}
	c := v.(*functionCounter)
	c.requests.Add(1)
	c.nanos.Add(int64(d))
	if err != nil {
		c.errors.Add(1)
	}
}

// FunctionStats returns the counts of the calls the worker ran (by NATS
// or on its lane), by function, and under "(malformed)" the messages on
// its call subject it could not read.
func (w *Worker) FunctionStats() map[string]FunctionStat {
	out := map[string]FunctionStat{}
	w.fnStats.Range(func(k, v any) bool {
		c := v.(*functionCounter)
		st := FunctionStat{Requests: c.requests.Load(), Errors: c.errors.Load(), ProcessingTime: time.Duration(c.nanos.Load())}
		if st.Requests > 0 {
			st.AverageTime = st.ProcessingTime / time.Duration(st.Requests)
		}
		out[k.(string)] = st
		return true
	})
	return out
}
