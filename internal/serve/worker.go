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

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/lazyctx"
	"github.com/processional/processional/internal/natsauth"
	"github.com/processional/processional/internal/peer"
	"github.com/processional/processional/internal/registry"
	"github.com/processional/processional/internal/wire"
)

// ServiceName is the NATS micro service name every worker registers.
const ServiceName = "processional"

// ServiceVersion is the version workers report to `nats micro info`.
const ServiceVersion = "0.1.0"

// Config configures [Serve]. Package worker's options check each field
// before it gets here; its zero value is a worker with a random id.
type Config struct {
	ID         string // the worker's id; empty means a random one
	Owner      string // the master that spawned it, which alone may detach or persist it
	MaxValue   uint64 // the largest value a call or reply may carry; 0 means chunks.DefaultLimit
	Pool       string // the pool whose queue group it joins, if any
	MaxPending int64  // calls held at once before refusing; 0 means DefaultMaxPending
}

// DefaultMaxPending is the number of calls a worker holds, accepted and
// not finished (queued or running), before it refuses more with
// [bus.ErrOverloaded]. It is above the 100 000 calls the pipelined bench
// row sends at once.
const DefaultMaxPending = 1 << 18

// Worker serves calls on one NATS connection. Its methods are safe for
// concurrent use.
type Worker struct {
	id    string
	owner string
	nc    *nats.Conn
	svc   micro.Service

	scratch   wire.Call // the envelope handle decodes into, for its strings
	joined    []byte    // the buffer of the call handleJoined hands handleCall
	hbScratch wire.Call // the same for heartbeat

	mu         sync.Mutex
	masters    map[string]*queue
	threads    map[callKey]*call     // running concurrent calls
	leases     map[string]*lease     // masters holding a lease, by id
	gone       map[string]goneMaster // masters that lapsed or closed, for a while
	closing    bool
	aborted    atomic.Bool    // calls not started yet are cancelled
	persistent atomic.Bool    // detached or persistent: its owner's lease and death do not stop it
	tasks      sync.WaitGroup // running calls and queue drainers

	stopping  chan struct{} // closed when the owner asked to close
	stopOnce  sync.Once
	lapsed    chan struct{} // closed when the owner's lease lapsed
	lapseOnce sync.Once
	stats     leaseStats
	leaseStop chan struct{} // stops watchLeases
	leaseDone chan struct{} // closed when watchLeases has returned
	closeOnce sync.Once
	closeErr  error

	peer    *peer.Context // given to the decoding of arguments, for references
	objMu   sync.Mutex    // guards the object table; taken after mu, never before
	objects map[uint64]*object
	byPtr   map[ptrKey]*object
	nextObj uint64
	closers sync.WaitGroup // closing dropped objects

	joining map[callKey]*joining // calls arriving in chunks; guarded by mu

	epoch      atomic.Uint64           // how many times the connection reconnected; in heartbeat acknowledgements
	hooked     *atomic.Pointer[Worker] // the worker, for the connection's handlers; nil once closed
	pending    atomic.Int64            // calls accepted and not finished: queued or running
	maxPending int64                   // past it, calls are refused with bus.ErrOverloaded
	fnStats    sync.Map                // function name → *functionCounter

	baseCtx    context.Context // the parent of JSON calls' contexts, cancelled by Abort
	baseCancel context.CancelFunc
	maxValue   uint64 // the largest call or reply, chunked

	drainers     chan string    // idle drainers take a master's queue from here
	drainStop    chan struct{}  // closed by Close: idle drainers exit
	idleDrainers sync.WaitGroup // drainer goroutines, busy or idle
}

type callKey struct {
	master string
	id     uint64
}

type call struct {
	key     callKey
	kind    wire.Kind
	fn      *registry.Function // the function called, or nil for an object operation
	op      opFunc             // the object operation called, or nil
	name    string             // the function's or operation's name
	pinned  []*object          // objects of this worker an operation works on: its target and arguments
	pid     int                // the caller's pid when it shares our /dev/shm, else 0
	joined  []byte             // the buffer the call was joined in from chunks, to give back once it ran
	since   time.Time          // when the call arrived
	argType string
	arg     []byte
	reply   string
	ctx     lazyctx.Ctx
	done    chan struct{} // a concurrent call's: closed when it has replied
	lapsed  atomic.Bool   // its master's lease lapsed: reply ErrLeaseLapsed
}

// ShmReceiver is the pid the call's result sends shared-memory buffers
// to by reference (codec.ShmReceiver).
func (cl *call) ShmReceiver() int { return cl.pid }

// cancel ends the call's context with err.
func (cl *call) cancel(err error) { cl.ctx.Cancel(err) }

// queue holds one master's blocking calls, run one after the other.
//
// Blocking calls are not kept in a map by id: at a hundred thousand calls
// in flight, hashing each one in and out was a sixth of the worker's CPU.
// A cancel finds its call as the queue's current one, or is noted in
// cancelled for when the call comes out of the queue.
type queue struct {
	items     []*call
	running   bool
	current   *call           // the call running now, if any
	batch     []*call         // the calls its drainer took out of items; nil once run
	closed    bool            // the master closed: forget the queue once it is empty
	dropped   bool            // the master's lease lapsed: cancel every call before it runs
	cancelled map[uint64]bool // ids cancelled while queued; cleared when the queue empties
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
	w := &Worker{
		id: c.ID, owner: c.Owner, nc: nc,
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
		joining:   make(map[callKey]*joining),
		maxValue:  c.MaxValue,
	}
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
		if hooked.Load() != nil {
			warnErr(c, sub, err)
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
		},
		QueueGroupDisabled: true,
		StatsHandler: func(e *micro.Endpoint) any {
			switch e.Name {
			case "heartbeat":
				return map[string]int64{"ignored": w.stats.ignored.Load(), "lapsed": w.stats.lapsed.Load()}
			case "call":
				return w.FunctionStats()
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("worker %s: micro service: %w", c.ID, err)
	}
	w.svc = svc
	err = svc.AddEndpoint("call", micro.HandlerFunc(w.handle),
		micro.WithEndpointSubject(wire.CallSubject(c.ID)),
		micro.WithEndpointPendingLimits(-1, -1),
		micro.WithEndpointMetadata(map[string]string{"format": "msgpack", "carries": "call, thread, cancel, close"}),
	)
	if err == nil {
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
		svc.Stop()
		return nil, fmt.Errorf("worker %s: subscribe: %w", c.ID, err)
	}
	go w.watchLeases(w.leaseStop, w.leaseDone)
	return w, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.id }

// Stopping is closed when the worker's owner asked it to close, after the
// owner's queued calls ran. The caller then calls [Worker.Close].
func (w *Worker) Stopping() <-chan struct{} { return w.stopping }

// handle runs in the NATS subscription's goroutine: it decodes the header
// and hands the call on, and never runs user code itself.
func (w *Worker) handle(req micro.Request) {
	data := req.Data()
	if wire.IsCallChunk(data) {
		w.chunk(req)
		return
	}
	w.handleCall(data, req.Reply())
}

// handleJoined handles a call joined from chunks; its buffer goes back to
// the chunks' buffers once the call has run.
func (w *Worker) handleJoined(data []byte, reply string) {
	w.joined = data
	w.handleCall(data, reply)
	if w.joined != nil { // not taken by a call: it was refused at once
		chunks.PutBuffer(w.joined)
		w.joined = nil
	}
}

// refuse answers cl, which will not run, with err, and lets go of what
// it holds: its context, the shared memory its argument refers to (never
// decoded: the buffers need not wait for us), its joined buffer.
func (w *Worker) refuse(cl *call, err error) {
	cl.cancel(context.Canceled)
	if cl.pid != 0 {
		codec.DropTransits(cl.arg)
	}
	if cl.joined != nil {
		chunks.PutBuffer(cl.joined)
		cl.joined, cl.arg = nil, nil
	}
	w.replyError(cl.reply, cl.key.id, cl.name, err)
}

// handleCall handles one call envelope, sent whole or joined from chunks.
func (w *Worker) handleCall(data []byte, reply string) {
	c := &w.scratch // handle runs on the one subscription's goroutine
	if err := wire.DecodeCall(data, c); err != nil {
		w.replyError(reply, 0, "", err)
		return
	}
	if c.Master == "" {
		w.replyError(reply, c.ID, c.Function, fmt.Errorf("%w: a %s with no master id", bus.ErrBadPayload, c.Kind))
		return
	}
	key := callKey{c.Master, c.ID}
	switch c.Kind {
	case wire.KindCancel:
		w.cancelCall(key)
		return
	case wire.KindDetach, wire.KindPersist:
		if w.owner == "" || c.Master != w.owner {
			w.replyError(reply, c.ID, "", fmt.Errorf("%w: %s from master %s, which does not own worker %s", bus.ErrNotOwner, c.Kind, c.Master, w.id))
			return
		}
		w.persistent.Store(true) // the owner's lease and death no longer matter
		w.publishReply(reply, c.ID, "", struct{}{}, nil)
		if c.Kind == wire.KindPersist {
			return
		}
		// Detach: the owner stops heartbeating, and its queued calls run
		// to the end all the same; then the worker exits, as on a close.
		w.mu.Lock()
		delete(w.leases, c.Master)
		w.gone[c.Master] = goneMaster{until: time.Now().Add(24 * time.Hour)}
		w.mu.Unlock()
		c.Kind, reply = wire.KindClose, "" // acknowledged already
		fallthrough
	case wire.KindClose:
		w.mu.Lock()
		if w.closing {
			// No new drainer may start now, but the master's calls may
			// still run: the close waits for them all the same.
			cl := &call{key: key, kind: wire.KindClose, reply: reply}
			if q := w.masters[c.Master]; q != nil && q.running {
				w.enqueueLocked(cl) // its drainer is running: it takes this too
				w.mu.Unlock()
				return
			}
			if w.hasThreadsLocked(c.Master) {
				w.tasks.Add(1) // its concurrent calls hold the count above zero
				w.mu.Unlock()
				go func() {
					defer w.tasks.Done()
					w.closeMaster(c.Master, cl)
				}()
				return
			}
			w.mu.Unlock()
			w.publishReply(reply, key.id, "", struct{}{}, nil)
			return
		}
		start := w.enqueueLocked(&call{key: key, kind: wire.KindClose, reply: reply})
		w.mu.Unlock()
		if start {
			w.startDrain(c.Master)
		}
		return
	}
	var (
		fn *registry.Function
		op opFunc
		ok bool
	)
	if len(c.Function) > 0 && c.Function[0] == '@' {
		op, ok = ops[c.Function]
	} else {
		fn, ok = registry.Lookup(c.Function)
	}
	if !ok {
		w.replyError(reply, c.ID, c.Function, fmt.Errorf("%w %q on worker %s", bus.ErrUnknownFunction, c.Function, w.id))
		return
	}
	cl := &call{key: key, kind: c.Kind, fn: fn, op: op, name: c.Function, argType: c.ArgType, arg: c.Arg, reply: reply, pid: int(c.PID)}
	cl.joined, w.joined = w.joined, nil
	cl.since = time.Now()
	// The context has no worker-wide parent: a child of a cancelable
	// parent costs a map insert and delete in the parent on every call.
	// Abort cancels the running calls one by one.
	if c.Timeout > 0 {
		cl.ctx.SetTimeout(c.Timeout)
	}
	// A call that wants no answer (a release): nobody cancels it or waits
	// for it, and its id is not unique.
	noAnswer := c.Kind == wire.KindThread && reply == "" && c.ID == 0
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		w.refuse(cl, fmt.Errorf("%w: worker %s is closing", bus.ErrClosed, w.id))
		return
	}
	if len(w.gone) > 0 {
		if g, ok := w.gone[c.Master]; ok && g.lapsed && time.Now().Before(g.until) {
			w.mu.Unlock()
			w.refuse(cl, fmt.Errorf("%w: worker %s dropped master %s, which sent no heartbeat for a whole lease", bus.ErrLeaseLapsed, w.id, c.Master))
			return
		}
	}
	// Every call counts until it has run (see run); only a release, which
	// nobody could be told of, is never refused.
	if n := w.pending.Add(1); n > w.maxPending && !noAnswer {
		w.pending.Add(-1)
		w.mu.Unlock()
		w.refuse(cl, fmt.Errorf("%w: worker %s holds %d calls, queued or running, at its limit of %d: call refused", bus.ErrOverloaded, w.id, n-1, w.maxPending))
		return
	}
	if noAnswer {
		w.tasks.Add(1)
		w.mu.Unlock()
		go func() {
			defer w.tasks.Done()
			w.run(cl)
		}()
		return
	}
	if c.Kind == wire.KindThread {
		cl.done = make(chan struct{})
		w.threads[key] = cl
		w.tasks.Add(1)
		w.mu.Unlock()
		go func() {
			defer w.tasks.Done()
			defer close(cl.done)
			w.run(cl)
		}()
		return
	}
	start := w.enqueueLocked(cl)
	w.mu.Unlock()
	if start {
		w.startDrain(c.Master)
	}
}

// enqueueLocked appends cl to its master's queue, with w.mu held. It
// reports whether the caller must start the queue's drainer.
func (w *Worker) enqueueLocked(cl *call) (start bool) {
	q := w.masters[cl.key.master]
	if q == nil {
		q = new(queue)
		w.masters[cl.key.master] = q
	}
	q.items = append(q.items, cl)
	if q.running {
		return false
	}
	q.running = true
	w.tasks.Add(1)
	return true
}

// cancelCall cancels the context of call key, running or queued.
func (w *Worker) cancelCall(key callKey) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.joining, key) // a call cancelled while its chunks arrive
	if cl := w.threads[key]; cl != nil {
		cl.cancel(context.Canceled)
		return
	}
	q := w.masters[key.master]
	if q == nil || !q.running {
		return // finished already: nothing to cancel
	}
	if q.current != nil && q.current.key.id == key.id {
		q.current.cancel(context.Canceled)
		return
	}
	if q.cancelled == nil {
		q.cancelled = make(map[uint64]bool)
	}
	q.cancelled[key.id] = true
}

// startDrain has a drainer run master's queue: an idle one if there is
// one, else a new goroutine.
//
// Drainers outlive their queue for a while: a goroutine started for each
// burst of calls grows its stack anew each time, which cost a worker that
// answers one call at a time (a proxy's method call, deep in reflection and
// msgpack) a tenth of its CPU in stack copies.
func (w *Worker) startDrain(master string) {
	select {
	case w.drainers <- master:
	default:
		w.idleDrainers.Add(1)
		go w.drainLoop(master)
	}
}

// drainIdle is how long a drainer waits for another queue before it exits.
const drainIdle = 2 * time.Second

func (w *Worker) drainLoop(master string) {
	defer w.idleDrainers.Done()
	idle := time.NewTimer(drainIdle)
	defer idle.Stop()
	for {
		w.drain(master)
		idle.Reset(drainIdle)
		select {
		case master = <-w.drainers:
		case <-idle.C:
			return
		case <-w.drainStop:
			return
		}
	}
}

// drain runs one master's queued calls in order and returns when the
// queue is empty.
func (w *Worker) drain(master string) {
	defer w.tasks.Done()
	w.mu.Lock()
	q := w.masters[master]
	w.mu.Unlock()
	var batch []*call
	for {
		w.mu.Lock()
		if len(q.items) == 0 {
			q.running = false
			q.cancelled = nil // what is left names calls that ran already
			if q.closed && w.masters[master] == q {
				delete(w.masters, master)
			}
			w.mu.Unlock()
			return
		}
		batch, q.items = q.items, batch[:0]
		q.batch = batch // for Pending: the calls of batch not run yet are queued
		w.mu.Unlock()
		for i, cl := range batch {
			if cl.kind == wire.KindClose {
				w.closeMaster(master, cl)
			} else {
				w.mu.Lock()
				if q.dropped {
					cl.lapsed.Store(true)
				}
				if q.cancelled[cl.key.id] || q.dropped {
					delete(q.cancelled, cl.key.id)
					cl.cancel(context.Canceled)
				}
				q.current = cl
				w.mu.Unlock()
				w.run(cl)
			}
			w.mu.Lock()
			q.current, batch[i] = nil, nil
			w.mu.Unlock()
		}
	}
}

// closeMaster handles a master's close request, once its earlier calls
// have run.
// hasThreadsLocked reports whether master has concurrent calls running;
// w.mu held.
func (w *Worker) hasThreadsLocked(master string) bool {
	for key := range w.threads {
		if key.master == master {
			return true
		}
	}
	return false
}

func (w *Worker) closeMaster(master string, cl *call) {
	w.mu.Lock()
	if q := w.masters[master]; q != nil {
		q.closed = true // drain forgets the queue once empty
	}
	var threads []chan struct{}
	for key, t := range w.threads {
		if key.master == master {
			threads = append(threads, t.done)
		}
	}
	w.mu.Unlock()
	for _, done := range threads { // its concurrent calls reply first
		<-done
	}
	w.mu.Lock()
	if l := w.leases[master]; l != nil {
		// A master that closed holds no lease, and the heartbeats it
		// sent before it knew do not give it one back.
		w.gone[master] = goneMaster{until: time.Now().Add(2 * l.length)}
		delete(w.leases, master)
	}
	w.mu.Unlock()
	w.dropHolder(master)
	if cl.reply != "" {
		w.publishReply(cl.reply, cl.key.id, "", struct{}{}, nil)
	}
	if w.owner != "" && master == w.owner {
		w.stopOnce.Do(func() { close(w.stopping) })
	}
}

// run calls cl's function behind recover and sends its reply.
func (w *Worker) run(cl *call) {
	var (
		res any
		err error
	)
	if err = cl.ctx.Err(); err == nil && w.aborted.Load() {
		err = context.Canceled
	}
	if err == nil {
		start := time.Now()
		res, err = w.invoke(cl)
		w.count(cl.name, time.Since(start), err)
	} else if cl.pid != 0 {
		codec.DropTransits(cl.arg) // never decoded: the buffers it refers to need not wait for us
	}
	if cl.joined != nil { // the argument is decoded: its chunks' buffer can serve again
		chunks.PutBuffer(cl.joined)
		cl.joined, cl.arg = nil, nil
	}
	if err != nil && cl.lapsed.Load() {
		err = fmt.Errorf("%w: worker %s heard no heartbeat from master %s for a whole lease and dropped its calls", bus.ErrLeaseLapsed, w.id, cl.key.master)
	}
	if cl.kind == wire.KindThread {
		w.mu.Lock()
		delete(w.threads, cl.key)
		w.mu.Unlock()
	}
	cl.cancel(context.Canceled)
	w.pending.Add(-1) // counted when handleCall accepted it
	if cl.reply == "" {
		return
	}
	if err != nil {
		w.replyError(cl.reply, cl.key.id, cl.name, err)
		return
	}
	w.publishReply(cl.reply, cl.key.id, cl.name, res, cl)
}

func (w *Worker) invoke(cl *call) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = wire.NewPanicError(r)
		}
	}()
	if cl.op != nil {
		defer w.unpinArgs(cl)
		return cl.op(w, cl)
	}
	return cl.fn.InvokeWith(&cl.ctx, cl.arg, cl.argType, w.peer)
}

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (w *Worker) publishReply(reply string, id uint64, function string, res any, cl *call) {
	buf := chunks.GetBuffer()
	bp := &buf
	var codec any
	if cl != nil && cl.pid != 0 {
		codec = cl // the caller shares our /dev/shm: buffers go by reference
	}
	out, err := wire.AppendReplyWith((*bp)[:0], id, res, codec)
	if err != nil {
		if len(function) > 0 && function[0] == '@' {
			err = fmt.Errorf("result of %s: %w; ask for it as a reference (CallRef, FieldRef, ItemRef), which keeps it on the worker", function, err)
		} else {
			err = fmt.Errorf("result of %s: %w; return a type that can travel, or keep the value on the worker (master.Wrap)", function, err)
		}
		out = wire.AppendErrorReply((*bp)[:0], id, wire.NewRemoteError(w.id, function, err))
	}
	if len(out) > int(w.nc.MaxPayload()) {
		out = w.sendChunked(reply, id, function, out)
	} else if err := w.nc.Publish(reply, out); errors.Is(err, nats.ErrMaxPayload) {
		// Say so rather than leave the caller waiting for a reply that
		// the server refused.
		err = fmt.Errorf("%w: the result of %s is %d bytes, over the server's max payload of %d", bus.ErrTooBig, function, len(out), w.nc.MaxPayload())
		out = wire.AppendErrorReply(out[:0], id, wire.NewRemoteError(w.id, function, err))
		w.nc.Publish(reply, out)
	}
	// Any other failure is a closed connection: the master sees the
	// worker gone and fails the call.
	chunks.PutBuffer(out)
}

func (w *Worker) replyError(reply string, id uint64, function string, err error) {
	if reply == "" {
		return
	}
	bp := buffers.Get().(*[]byte)
	out := wire.AppendErrorReply((*bp)[:0], id, wire.NewRemoteError(w.id, function, err))
	w.nc.Publish(reply, out)
	*bp = out
	buffers.Put(bp)
}

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
		w.closeErr = w.svc.Stop()
		if errors.Is(w.closeErr, nats.ErrConnectionClosed) {
			w.closeErr = nil
		}
		close(w.leaseStop)
		<-w.leaseDone
		w.dropAll()
		w.closers.Wait()
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
