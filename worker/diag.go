package worker

import (
	"runtime"
	"sort"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/processional/processional/bus"
)

// PendingCall describes a call the worker has queued or is running, for
// diagnosis.
type PendingCall struct {
	Master   string        `json:"master"`
	ID       uint64        `json:"id"`
	Function string        `json:"function"`
	Kind     string        `json:"kind"`  // call or thread
	State    string        `json:"state"` // queued or running
	Age      time.Duration `json:"-"`
	AgeMS    int64         `json:"age_ms"`
}

// Pending lists the calls the worker has queued or is running, oldest
// first.
func (w *Worker) Pending() []PendingCall {
	now := time.Now()
	var out []PendingCall
	add := func(cl *call, state string) {
		age := now.Sub(cl.since)
		out = append(out, PendingCall{Master: cl.key.master, ID: cl.key.id, Function: cl.name, Kind: cl.kind.String(), State: state, Age: age, AgeMS: age.Milliseconds()})
	}
	w.mu.Lock()
	for _, q := range w.masters {
		if q.current != nil {
			add(q.current, "running")
		}
		for _, list := range [][]*call{q.batch, q.items} {
			for _, cl := range list {
				if cl != nil && cl != q.current && cl.kind != bus.KindClose {
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
