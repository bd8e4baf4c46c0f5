package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/internal/lane"
	"github.com/processional/processional/internal/natsauth"
	"github.com/processional/processional/internal/peer"
	"github.com/processional/processional/internal/registry"
	"github.com/processional/processional/internal/wire"
)

// Worker serves calls on one NATS connection. Its methods are safe for
// concurrent use.
type Worker struct {
	id    string
	owner string
	nc    *nats.Conn
	svc   micro.Service

	natsIn    inlet     // the call subscription's reader's (serveCalls)
	natsRun   inlineRun // the call reader's queue runs
	laneIn    inlet     // the lane reader's
	laneRun   inlineRun // the lane reader's queue runs
	hbScratch wire.Call // the envelope heartbeat decodes into, on its one goroutine

	lane        *lane.Conn     // the lane to the master that spawned the worker, if any
	laneReaders sync.WaitGroup // the lane's readers; Close awaits them
	onLaneLost  func(error)    // called when the lane ends and the owner with it
	laneClosed  atomic.Bool    // Close closed the lane
	born        time.Time      // the worker's start, for monotonic times in atomics

	callSub     *nats.Subscription // the call subject's, delivering to callCh
	callCh      chan *nats.Msg
	callStop    chan struct{}  // closed by Close once callSub is gone: the readers end
	callReaders sync.WaitGroup // serveCalls goroutines; Close awaits them

	mu         sync.Mutex
	masters    map[string]*queue
	threads    map[callKey]*call     // running concurrent calls
	leases     map[string]*lease     // masters holding a lease, by id
	gone       map[string]goneMaster // masters that lapsed or closed, for a while
	closing    bool
	aborted    atomic.Bool    // calls not started yet are cancelled
	persistent atomic.Bool    // detached or persistent: its owner's lease and death do not stop it
	tasks      sync.WaitGroup // running calls and queue drains; Close awaits them

	stopping  chan struct{} // closed when the owner asked to close
	stopOnce  sync.Once
	lapsed    chan struct{} // closed when the owner's lease lapsed
	lapseOnce sync.Once
	stats     leaseStats
	leaseStop chan struct{} // closed by Close: watchLeases returns
	leaseDone chan struct{} // closed when watchLeases has returned, which Close awaits
	closeOnce sync.Once
	closeErr  error

	peer    *peer.Context // given to the decoding of arguments, for references
	objMu   sync.Mutex    // guards the object table; taken after mu, never before
	objects map[uint64]*object
	byPtr   map[ptrKey]*object
	nextObj uint64
	closers sync.WaitGroup // goroutines closing dropped objects; Close awaits them

	joining map[callKey]*chunks.Joiner // calls arriving in chunks; guarded by mu

	maxPay     chunks.MaxPayload       // the server's max payload
	epoch      atomic.Uint64           // in heartbeat acknowledgements: this process's own (high half), and how many times the connection reconnected (low half)
	hooked     *atomic.Pointer[Worker] // the worker, for the connection's handlers; nil once closed
	pending    atomic.Int64            // calls accepted and not finished: queued or running
	maxPending int64                   // past it, calls are refused with bus.ErrOverloaded
	fnStats    sync.Map                // function name → *functionCounter

	baseCtx    context.Context // the parent of JSON calls' contexts, cancelled by Abort
	baseCancel context.CancelFunc
	maxValue   uint64 // the largest call or reply, chunked

	drainers     chan string    // idle drainers take a master's queue from here
	drainStop    chan struct{}  // closed by Close: idle drainers exit
	idleDrainers sync.WaitGroup // drainer goroutines, busy or idle; Close awaits them
}

// Serve starts a worker on nc and returns once it is subscribed. The
// worker runs until [Worker.Close]; nc stays the caller's to close, after
// Close.
func Serve(nc *nats.Conn, c Config) (*Worker, error) {
	if nc == nil {
		return nil, errors.New("worker: nil NATS connection")
	}
	if c.ID == "" {
		c.ID = wire.NewID("w")
	}
	for _, id := range [][2]string{{"worker id", c.ID}, {"owner id", c.Owner}, {"pool name", c.Pool}} {
		if id[1] != "" {
			if err := wire.CheckID(id[0], id[1]); err != nil {
				return nil, fmt.Errorf("worker: %w", err)
			}
		}
	}
	w := &Worker{
		id: c.ID, owner: c.Owner, nc: nc, born: time.Now(),
		masters:   make(map[string]*queue),
		threads:   make(map[callKey]*call),
		leases:    make(map[string]*lease),
		gone:      make(map[string]goneMaster),
		stopping:  make(chan struct{}),
		lapsed:    make(chan struct{}),
		leaseStop: make(chan struct{}),
		leaseDone: make(chan struct{}),
		drainers:  make(chan string),
		drainStop: make(chan struct{}),
		maxValue:  c.MaxValue,
	}
	// The epoch's high half names this process among the workers that
	// ever served under the id: a master that sees it change knows that
	// the worker it spoke to died and another took its id.
	w.epoch.Store(newSecret()&^(1<<32-1) | 1<<63)
	if w.maxValue == 0 {
		w.maxValue = chunks.DefaultLimit
	}
	w.maxPending = c.MaxPending
	if w.maxPending == 0 {
		w.maxPending = DefaultMaxPending
	}
	w.peer = &peer.Context{Conn: nc, ID: c.ID, Local: w.Object}
	w.baseCtx, w.baseCancel = context.WithCancel(context.Background())
	// The connection's handlers reach the worker through hooked, which
	// Close clears: on a connection the worker shares (Serve), they then
	// only pass on to the handlers that were there before, and hold no
	// closed worker.
	hooked := new(atomic.Pointer[Worker]) // apart: a pointer into w would hold all of w
	hooked.Store(w)
	w.hooked = hooked
	// A reconnect may have lost messages in flight (NATS delivers at most
	// once): the masters learn it from the epoch in heartbeat answers.
	prev := nc.Opts.ReconnectedCB
	nc.SetReconnectHandler(func(c *nats.Conn) {
		if w := hooked.Load(); w != nil {
			w.maxPay.Reset() // the new server's may differ
			w.epoch.Add(1)
			slog.Info("processional: the worker's NATS connection is back; its masters fail the calls in flight", "worker", w.id, "epoch", w.epoch.Load())
		}
		if prev != nil {
			prev(c)
		}
	})
	// A slow consumer made visible: the client dropping messages for a
	// subscription past its pending limits, or the server cutting the
	// connection off (a disconnection, then the reconnect above).
	prevDisc := nc.Opts.DisconnectedErrCB
	nc.SetDisconnectErrHandler(func(c *nats.Conn, err error) {
		if w := hooked.Load(); w != nil && err != nil {
			slog.Warn("processional: the worker lost its NATS connection; reconnecting", "worker", w.id, "err", err)
		}
		if prevDisc != nil {
			prevDisc(c, err)
		}
	})
	prevErr := nc.Opts.AsyncErrorCB
	warnErr := natsauth.ErrorHandler(slog.Warn, "worker", w.id)
	nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
		if w := hooked.Load(); w != nil {
			warnErr(c, sub, err)
			if sub != nil && sub == w.callSub && errors.Is(err, nats.ErrSlowConsumer) {
				w.slowCalls()
			}
		}
		if prevErr != nil {
			prevErr(c, sub, err)
		}
	})
	svc, err := micro.AddService(nc, micro.Config{
		Name:        ServiceName,
		Version:     ServiceVersion,
		Description: "processional worker " + c.ID,
		Metadata: map[string]string{
			"worker":   c.ID,
			"protocol": fmt.Sprint(wire.Version()),
			"pid":      fmt.Sprint(os.Getpid()),
			"pool":     c.Pool,
			"calls":    wire.CallSubject(c.ID),
		},
		QueueGroupDisabled: true,
		StatsHandler: func(e *micro.Endpoint) any {
			switch e.Name {
			case "heartbeat":
				return map[string]int64{"ignored": w.stats.ignored.Load(), "lapsed": w.stats.lapsed.Load()}
			case "calls":
				return w.FunctionStats()
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("worker %s: micro service: %w", c.ID, err)
	}
	w.svc = svc
	// The calls come on a subscription of the worker's own, not a micro
	// endpoint's: its reader runs a call itself when its master's queue
	// is idle (serveCalls), where a micro handler would hand it to
	// another goroutine, and wake another thread, on every call.
	w.callCh = make(chan *nats.Msg, callChanLen)
	w.callStop = make(chan struct{})
	w.callSub, err = nc.ChanSubscribe(wire.CallSubject(c.ID), w.callCh)
	if err == nil {
		w.natsIn.inline = true
		w.callReaders.Add(1)
		go w.serveCalls() // ends once Close has unsubscribed, and awaited
		err = svc.AddEndpoint("heartbeat", micro.HandlerFunc(w.heartbeat),
			micro.WithEndpointSubject(wire.HeartbeatSubject(c.ID)),
			micro.WithEndpointPendingLimits(-1, -1),
			micro.WithEndpointMetadata(map[string]string{"format": "msgpack", "carries": "heartbeat"}),
		)
	}
	for _, verb := range []struct {
		name    string
		handler micro.HandlerFunc
		carries string
	}{
		{"calls", w.callsVerb, "the calls the worker ran, by function: requests, errors, time (JSON); the calls themselves (msgpack) come on the subject of the service's metadata \"calls\""},
		{"hello", w.hello, "the worker's hello (msgpack): protocol version, id, pid, functions"},
		{"leases", w.leasesVerb, "the masters holding a lease, with the ms since their last heartbeat (JSON)"},
		{"stop", w.stopVerb, "asks a worker with no owner (a server) to stop after its running calls"},
		{"refs", w.refsVerb, "the objects the worker holds: id, type, holders, age, operations in flight (JSON)"},
		{"pending", w.pendingVerb, "the calls queued and running: master, id, function, kind, state, age (JSON)"},
		{"stack", w.stackVerb, "the stacks of all the worker's goroutines (text)"},
	} {
		if err != nil {
			break
		}
		err = svc.AddEndpoint(verb.name, verb.handler,
			micro.WithEndpointSubject(wire.ControlSubject(c.ID, verb.name)),
			micro.WithEndpointMetadata(map[string]string{"carries": verb.carries}))
	}
	if err == nil {
		err = w.addJSONEndpoints(c.Pool)
	}
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		w.baseCancel()
		w.stopCalls()
		svc.Stop()
		return nil, fmt.Errorf("worker %s: subscribe: %w", c.ID, err)
	}
	if c.Lane != nil { // before watchLeases, which relieves its reader
		w.lane = lane.New(c.Lane, int(w.maxValue)+lane.Overhead, w.ownerAlive)
		w.onLaneLost = c.OnLaneLost
		w.laneIn.inline = true
		w.laneReaders.Add(1)
		go w.serveLane() // ends with the lane, which Close closes and awaits
	}
	go w.watchLeases(w.leaseStop, w.leaseDone) // stopped and awaited by Close
	return w, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.id }

// Stopping is closed when the worker's owner asked it to close, after the
// owner's queued calls ran. The caller then calls [Worker.Close].
func (w *Worker) Stopping() <-chan struct{} { return w.stopping }

// Close stops taking calls, lets the queued and running ones finish and
// reply, then stops the micro service. It blocks until then, is idempotent
// and safe for concurrent use. Calls that arrive while it closes fail with
// [bus.ErrClosed].
func (w *Worker) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closing = true
		w.mu.Unlock()
		w.tasks.Wait()
		close(w.drainStop)
		w.idleDrainers.Wait()
		// The references the worker received are released at their
		// owners, then the objects it holds are dropped and closed.
		w.peer.Close()
		w.stopCalls()
		w.closeErr = w.svc.Stop()
		if errors.Is(w.closeErr, nats.ErrConnectionClosed) {
			w.closeErr = nil
		}
		close(w.leaseStop)
		<-w.leaseDone
		w.dropAll()
		w.closers.Wait()
		if w.lane != nil {
			// Last: the owner takes the lane's end for the worker's, and
			// kills a worker that would still be closing.
			w.laneClosed.Store(true)
			w.lane.Flush(laneFlushWait) // the replies queued for the lane's flusher go first
			w.lane.Close()
			w.laneReaders.Wait()
		}
		w.baseCancel()
		w.hooked.Store(nil)
		w.stopOnce.Do(func() { close(w.stopping) })
	})
	return w.closeErr
}

// Abort cancels every running call's context, then closes the worker as
// [Worker.Close] does.
func (w *Worker) Abort() error {
	w.mu.Lock()
	w.closing = true
	w.aborted.Store(true)
	for _, q := range w.masters {
		if q.current != nil {
			q.current.cancel(context.Canceled)
		}
	}
	for _, cl := range w.threads {
		cl.cancel(context.Canceled)
	}
	w.mu.Unlock()
	w.baseCancel() // JSON calls
	return w.Close()
}

// inlet is what one source of calls (the NATS call endpoint, the lane)
// decodes a call into: handleCall runs on one goroutine per source.
type inlet struct {
	call    wire.Call          // the envelope, for its strings
	joined  []byte             // the buffer of the call handleJoined hands handleCall
	inline  bool               // the inlet's reader drains the queues it starts itself
	holding bool               // a batch is read: the queue it starts is run once it is all in
	drain   string             // the master whose queue handleCall left for it to drain
	at      time.Time          // when the call handled now arrived
	batch   wire.Received      // the batch read, for its memory
	fn      *registry.Function // the function of the last call read: the next likely calls it too
}
