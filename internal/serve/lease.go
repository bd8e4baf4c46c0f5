package serve

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/lane"
	"github.com/processional/processional/internal/wire"
)

// leaseTick is how often the worker looks for lapsed leases: a lapse is
// noticed at most this late.
const leaseTick = 20 * time.Millisecond

// stallGap is how late a look for lapsed leases must come for the worker
// to count itself stalled (stopped, or starved of CPU): the time it did
// not run is not its masters' silence, and is added to their leases.
const stallGap = 5 * leaseTick

// lease is one master's hold on the worker, renewed by its heartbeats.
type lease struct {
	length time.Duration
	last   time.Time
}

// goneMaster remembers a master whose lease lapsed or who closed, until
// its stray heartbeats have stopped coming: they must not give it a lease
// back. A lapsed master is told so.
type goneMaster struct {
	lapsed bool
	until  time.Time
}

// leaseStats counts what the heartbeat endpoint saw.
type leaseStats struct {
	ignored atomic.Int64 // malformed heartbeats and messages
	lapsed  atomic.Int64 // leases that lapsed
}

// heartbeat renews a master's lease and acknowledges it. It runs on the
// heartbeat subscription's goroutine, apart from calls, so that a backlog
// of calls never delays it.
func (w *Worker) heartbeat(req micro.Request) {
	w.beat(&w.hbScratch, req.Data(), req.Reply()) // heartbeat runs on its one subscription's goroutine
}

// beat renews a master's lease from heartbeat data, decoded into c, and
// acknowledges it to reply: a NATS subject, laneReply or none.
func (w *Worker) beat(c *wire.Call, data []byte, reply string) {
	if err := wire.DecodeCall(data, c); err != nil || c.Kind != wire.KindHeartbeat || c.Timeout <= 0 || c.Master == "" {
		w.stats.ignored.Add(1)
		return
	}
	w.mu.Lock()
	if g, ok := w.gone[c.Master]; ok && time.Now().Before(g.until) {
		w.mu.Unlock()
		if g.lapsed && reply != "" {
			err := fmt.Errorf("%w: worker %s heard no heartbeat from master %s for a whole lease and dropped its calls", bus.ErrLeaseLapsed, w.id, c.Master)
			w.ack(reply, wire.AppendErrorReply(nil, 0, wire.NewRemoteError(w.id, "", err)))
		}
		return
	}
	// A closing worker still renews the leases it holds (their calls run
	// to the end) but takes no new master.
	if l := w.leases[c.Master]; l != nil || !w.closing {
		if l == nil {
			l = new(lease)
			w.leases[c.Master] = l
		}
		l.length, l.last = c.Timeout, time.Now()
	}
	w.mu.Unlock()
	if reply != "" {
		bp := buffers.Get().(*[]byte)
		// The reply's id is the worker's connection epoch: a master that
		// sees it change knows calls in flight may have been lost.
		out, _ := wire.AppendReply((*bp)[:0], w.epoch.Load(), w.id) // a string always encodes
		w.ack(reply, out)
		*bp = out
		buffers.Put(bp)
	}
}

// ack sends a heartbeat's acknowledgement to reply: a NATS subject, or
// the lane.
func (w *Worker) ack(reply string, data []byte) {
	if reply == laneReply {
		w.lane.Write(lane.Ack, data)
		return
	}
	w.nc.Publish(reply, data)
}

// watchLeases drops the masters whose lease lapsed, until stop is closed.
func (w *Worker) watchLeases(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(leaseTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			// The clock, not the tick's value: a ticker sends the time it
			// was due, and the first tick read after a stall was due
			// before it.
			now := time.Now()
			if gap := now.Sub(last); gap > stallGap {
				w.stalled(gap-leaseTick, now)
			}
			last = now
			w.expireLeases(now)
			if w.lane != nil {
				w.relieveLane()
			}
			w.relieveCalls()
		}
	}
}

// stalled adds d, a time the worker did not run, to every lease, up to
// now: the heartbeats that came meanwhile wait unread, and the masters'
// silence was the worker's own. A lease renewed since the stall ended
// stays as it is: no lease runs past a whole length from now.
func (w *Worker) stalled(d time.Duration, now time.Time) {
	w.mu.Lock()
	for _, l := range w.leases {
		if last := l.last.Add(d); last.Before(now) {
			l.last = last
		} else if l.last.Before(now) {
			l.last = now
		}
	}
	w.mu.Unlock()
}

// expireLeases drops the masters whose lease lapsed by now.
func (w *Worker) expireLeases(now time.Time) {
	ownerGone := false
	w.mu.Lock()
	for master, g := range w.gone {
		if now.After(g.until) {
			delete(w.gone, master)
		}
	}
	for master, l := range w.leases {
		if now.Sub(l.last) <= l.length {
			continue
		}
		delete(w.leases, master)
		w.gone[master] = goneMaster{lapsed: true, until: now.Add(2 * l.length)}
		w.stats.lapsed.Add(1)
		w.dropMasterLocked(master)
		ownerGone = ownerGone || (w.owner != "" && master == w.owner && !w.persistent.Load())
	}
	w.mu.Unlock()
	if ownerGone {
		w.lapseOnce.Do(func() { close(w.lapsed) })
	}
}

// dropMasterLocked cancels everything a master whose lease lapsed had on
// the worker: its running call, its queued calls (they reply Canceled
// without running) and its concurrent calls; w.mu held.
func (w *Worker) dropMasterLocked(master string) {
	if q := w.masters[master]; q != nil {
		q.closed = true  // its drainer forgets it once empty
		q.dropped = true // and cancels what it takes out, queued or in hand
		if q.current != nil {
			q.current.lapsed.Store(true)
			q.current.cancel(context.Canceled)
		}
	}
	for key, cl := range w.threads {
		if key.master == master {
			cl.lapsed.Store(true)
			cl.cancel(context.Canceled)
		}
	}
	for key := range w.joining {
		if key.master == master {
			delete(w.joining, key)
		}
	}
	w.dropHolder(master)
}

// Lapsed is closed when the lease of the worker's owner (Config.Owner)
// lapsed: its master is gone. The caller then calls [Worker.Abort].
func (w *Worker) Lapsed() <-chan struct{} { return w.lapsed }

// Leases returns the masters that hold a lease on the worker, with the
// time since their last heartbeat.
func (w *Worker) Leases() map[string]time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]time.Duration, len(w.leases))
	for m, l := range w.leases {
		out[m] = time.Since(l.last)
	}
	return out
}

// hello answers the worker's Hello, for a master that connects to a
// worker it did not spawn.
func (w *Worker) hello(req micro.Request) {
	h := wire.NewHello(w.id)
	h.Epoch = w.epoch.Load() // the process the master attaches to, and its reconnects so far
	data, err := codec.Marshal(h)
	if err != nil {
		req.Error("500", err.Error(), nil)
		return
	}
	req.Respond(data)
}

// leasesVerb answers the masters holding a lease, in JSON: master id →
// milliseconds since its last heartbeat.
func (w *Worker) leasesVerb(req micro.Request) {
	out := map[string]int64{}
	for m, d := range w.Leases() {
		out[m] = d.Milliseconds()
	}
	req.RespondJSON(out)
}

// stopVerb asks a worker with no owner, or a persistent one, to stop:
// [Worker.Stopping] closes. A spawned worker refuses: its master closes
// it.
func (w *Worker) stopVerb(req micro.Request) {
	if w.owner != "" && !w.persistent.Load() {
		req.Error("403", "worker "+w.id+" belongs to master "+w.owner+": close it from there", nil)
		return
	}
	req.Respond([]byte("stopping"))
	w.stopOnce.Do(func() { close(w.stopping) })
}

// refsVerb answers the objects the worker holds, in JSON.
func (w *Worker) refsVerb(req micro.Request) {
	req.RespondJSON(w.Objects())
}

// Persistent reports whether the worker's owner detached it or made it
// persistent: its owner's lease and death no longer stop it.
func (w *Worker) Persistent() bool { return w.persistent.Load() }
