package master

import (
	"context"
	"fmt"
	"iter"
	"runtime"
	"sync"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
)

// The default credit window of a stream: what a producer may send ahead
// of its consumer.
const (
	DefaultWindowItems = 128
	DefaultWindowBytes = 4 << 20
)

// StreamOption configures [Stream].
type StreamOption func(*streamOptions) error

type streamOptions struct {
	items int
	bytes int
}

// WithWindow sets the stream's credit window: the producer sends at most
// items items, and at most bytes bytes of items (but always one), that
// the consumer has not taken yet. A slow consumer holds the producer
// back: nothing grows without bound. The default is
// [DefaultWindowItems] and [DefaultWindowBytes].
func WithWindow(items, bytes int) StreamOption {
	return func(o *streamOptions) error {
		if items < 1 || bytes < 1 {
			return fmt.Errorf("%w: WithWindow(%d, %d): a window of at least one item and one byte", ErrConfig, items, bytes)
		}
		o.items, o.bytes = items, bytes
		return nil
	}
}

// Stream runs the registered stream s(arg) on ex and returns its items as
// an iterator, to range over:
//
//	for n, err := range master.Stream(ctx, slave, Count, 5) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(n)
//	}
//
// Each range runs the stream anew. Items arrive in order; a failure
// (the stream's error, a panic with its stack, the worker lost, ctx's
// end) is the last pair, with a zero item. Breaking out of the loop
// cancels the producer's context at once, wherever it runs. The producer
// runs ahead of the loop by at most a window of items ([WithWindow]).
//
// On a worker the stream runs beside the worker's other calls, as a
// [Thread] does; on a slave thread or InGoroutine in a goroutine of its
// own; InCaller in the ranging goroutine, item by item.
func Stream[A, T any](ctx context.Context, ex Executor, s *bus.StreamFunc[A, T], arg A, opts ...StreamOption) iter.Seq2[T, error] {
	ctx = orBackground(ctx)
	o := streamOptions{items: DefaultWindowItems, bytes: DefaultWindowBytes}
	var optErr error
	for _, opt := range opts {
		if err := opt(&o); err != nil && optErr == nil {
			optErr = err
		}
	}
	return func(yield func(T, error) bool) {
		var zero T
		switch {
		case optErr != nil:
			yield(zero, optErr)
			return
		case s == nil:
			yield(zero, fmt.Errorf("%w: nil stream", ErrBadCall))
			return
		}
		if err := ctx.Err(); err != nil {
			yield(zero, err)
			return
		}
		if sl, err := streamSlave(ex); sl != nil || err != nil {
			if err != nil {
				yield(zero, err)
				return
			}
			remoteStream(ctx, sl, s.Name(), typeName[A](), arg, o, yield)
			runtime.KeepAlive(ex) // dropping the handle closes the slave: not while its stream runs
			return
		}
		produce := func(ctx context.Context, emit func(T) bool) error { return s.Call(ctx, arg, emit) }
		switch ex := ex.(type) {
		case callerExec:
			inCaller(ctx, s.Name(), produce, yield)
		case goroutineExec:
			localStream(ctx, s.Name(), o.items, func(ctx context.Context, fn func(context.Context) (struct{}, error)) *Task[struct{}] {
				return goLocal(ctx, s.Name(), fn)
			}, produce, yield)
		case *SlaveThread:
			if err := ex.usable(); err != nil {
				yield(zero, err)
				return
			}
			localStream(ctx, s.Name(), o.items, func(ctx context.Context, fn func(context.Context) (struct{}, error)) *Task[struct{}] {
				return threadRun(ctx, ex, s.Name(), fn)
			}, produce, yield)
		default:
			yield(zero, fmt.Errorf("%w: executor %T", ErrBadCall, ex))
		}
	}
}

// streamSlave returns the worker a stream on ex goes to, if ex is one.
func streamSlave(ex Executor) (*slave, error) {
	switch ex := ex.(type) {
	case *Slave:
		if ex == nil || ex.slave == nil || ex.m == nil {
			return nil, fmt.Errorf("%w: a nil or zero Slave: get one from Spawn", ErrBadCall)
		}
		return ex.slave, nil
	case *idempotentSlave:
		// A stream is not sent again: what it yielded was consumed.
		if ex == nil || ex.h == nil || ex.h.slave == nil || ex.h.m == nil {
			return nil, fmt.Errorf("%w: a nil or zero idempotent Slave: get one from Slave.Idempotent", ErrBadCall)
		}
		return ex.h.slave, nil
	case *Pool:
		if ex == nil || ex.m == nil {
			return nil, fmt.Errorf("%w: a nil or zero Pool: get one from Master.Pool", ErrBadCall)
		}
		return ex.pick()
	}
	return nil, nil
}

// inCaller runs the producer in the ranging goroutine: each item goes
// straight to the loop's body. A yield from a goroutine the producer left
// behind, after it returned or after the loop broke, is refused: the
// loop's body is never called after the loop ended.
func inCaller[T any](ctx context.Context, name string, produce func(context.Context, func(T) bool) error, yield func(T, error) bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex // held around each call of the loop's body
	broke, returned := false, false
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = wire.NewPanicError(r)
			}
		}()
		err = produce(ctx, func(v T) bool {
			mu.Lock()
			defer mu.Unlock()
			if broke || returned || ctx.Err() != nil {
				return false // after break, after the producer returned, or after ctx's end
			}
			if !yield(v, nil) {
				broke = true
				cancel()
			}
			return !broke
		})
	}()
	mu.Lock()
	returned = true
	mu.Unlock()
	if broke {
		return // the loop has left: it wants nothing more
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		var zero T
		yield(zero, fmt.Errorf("%s: %w", name, err))
	}
}

// localStream runs the producer in a goroutine start gives it (a new
// goroutine, or a slave thread's), handing items to the loop through a
// channel of window items: a slow loop holds the producer back. The task
// may end without running the producer (its context ended first, its
// thread closed): the loop ends with the task, not with the channel.
func localStream[T any](ctx context.Context, name string, window int, start func(context.Context, func(context.Context) (struct{}, error)) *Task[struct{}], produce func(context.Context, func(T) bool) error, yield func(T, error) bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := make(chan T, window)
	t := start(ctx, func(ctx context.Context) (struct{}, error) {
		var mu sync.Mutex // a yield from a goroutine the producer left behind sends nothing once it returned
		ended := false
		err := produce(ctx, func(v T) bool {
			mu.Lock()
			defer mu.Unlock()
			if ended {
				return false
			}
			select {
			case items <- v:
				return true
			case <-ctx.Done():
				return false
			}
		})
		mu.Lock()
		ended = true
		mu.Unlock()
		return struct{}{}, err
	})
	done := t.Done()
	for {
		var v T
		select {
		case v = <-items:
		case <-done:
			select {
			case v = <-items: // what it sent before it ended
			default:
				goto end
			}
		case <-ctx.Done():
			goto end
		}
		if !yield(v, nil) {
			cancel()
			t.Wait(context.Background()) // the producer sees its context end
			return
		}
	}
end:
	_, err := t.Wait(context.Background())
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		var zero T
		yield(zero, err)
	}
}

// remoteStream runs stream name on worker s, yielding its items until the
// loop breaks or the stream ends.
func remoteStream[T any](ctx context.Context, s *slave, name, argType string, arg any, o streamOptions, yield func(T, error) bool) {
	st := &streamCall{s: s, name: name, window: o, ready: make(chan struct{})}
	s.send(ctx, wire.KindStream, name, argType, arg, st, watchGroup)
	defer st.stop()
	var zero T
	for {
		raw, size, err, ok := st.next(ctx)
		if !ok {
			if err != nil {
				yield(zero, err)
			}
			return
		}
		var v T
		derr := codec.Unmarshal(raw, &v)
		if derr != nil {
			if codec.HasShm(raw) {
				codec.DropTransits(raw) // never decoded: its segments need not wait for us
			}
			yield(zero, fmt.Errorf("%w: %s: item does not decode into %T: %v", bus.ErrResultType, name, v, derr))
			return
		}
		st.consumed(size)
		if !yield(v, nil) {
			return
		}
	}
}

// streamCall is a stream sent to a worker: it stands for it in the
// slave's pending set, and queues the items that arrive.
type streamCall struct {
	s      *slave
	name   string
	window streamOptions

	mu         sync.Mutex
	id         uint64
	queue      [][]byte      // items arrived and not taken, oldest first
	sizes      []int         // the sizes of their envelopes, as the worker counts them
	ended      bool          // the final reply came, or the stream failed
	err        error         // why it ended, if it failed
	ready      chan struct{} // closed when an item arrives or the stream ends; then made anew
	kick       func()
	pins       []*refEntry
	grp        *ctxGroup
	joined     []byte // the buffer the last item was joined in, to give back
	taken      int    // items taken since the last credit
	takenBytes int    // their bytes
	stopping   bool   // the loop left: drop what comes
	unwatch    func() bool
}

// item queues one item, arrived from the worker in an envelope of size
// bytes.
func (c *streamCall) item(raw []byte, size int) {
	v := make([]byte, len(raw)) // the message's buffer may serve again
	copy(v, raw)
	c.mu.Lock()
	if c.joined != nil {
		chunks.PutBuffer(c.joined)
		c.joined = nil
	}
	if c.ended || c.stopping {
		c.mu.Unlock()
		if codec.HasShm(v) {
			codec.DropTransits(v)
		}
		return
	}
	c.queue = append(c.queue, v)
	c.sizes = append(c.sizes, size)
	c.wakeLocked()
}

// wakeLocked wakes the loop waiting for an item, and unlocks c.mu.
func (c *streamCall) wakeLocked() {
	close(c.ready)
	c.ready = make(chan struct{})
	kick := c.kick
	c.mu.Unlock()
	if kick != nil {
		kick()
	}
}

// resolve ends the stream: the final reply, or the worker's loss.
func (c *streamCall) resolve(_ []byte, remote *bus.RemoteError, err error) {
	if remote != nil {
		err = remote
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended, c.err = true, err
	pins, unwatch := c.pins, c.unwatch
	c.pins, c.unwatch = nil, nil
	if unwatch != nil {
		defer unwatch()
	}
	if c.joined != nil {
		chunks.PutBuffer(c.joined)
		c.joined = nil
	}
	c.wakeLocked()
	unpinAll(pins)
}

// abort ends the stream with err and cancels it on the worker.
func (c *streamCall) abort(err error) {
	c.resolve(nil, nil, err)
	c.mu.Lock()
	id := c.id
	c.mu.Unlock()
	if id != 0 {
		c.s.cancelCall(id)
	}
}

// sent records the stream's id, and grants the worker its window.
func (c *streamCall) sent(s *slave, id uint64) {
	c.mu.Lock()
	c.id = id
	ended := c.ended
	c.mu.Unlock()
	if ended {
		s.cancelCall(id)
		return
	}
	c.credit(uint64(c.window.items), uint64(c.window.bytes))
}

// credit grants the worker items more (and the byte window, if bytes is
// not 0).
func (c *streamCall) credit(items, bytes uint64) {
	data, err := wire.AppendCredit(nil, c.s.m.id, c.id, items, bytes)
	if err == nil {
		c.s.publish(data)
	}
}

// consumed counts one item of size bytes taken by the loop, and
// acknowledges them to the worker half a window at a time: half its
// items, or half its bytes.
func (c *streamCall) consumed(size int) {
	c.mu.Lock()
	c.taken++
	c.takenBytes += size
	if c.taken*2 < c.window.items && c.takenBytes*2 < c.window.bytes {
		c.mu.Unlock()
		return
	}
	c.ackLocked()
}

// ackLocked acknowledges the items taken and not acknowledged yet, if
// any, and unlocks c.mu.
func (c *streamCall) ackLocked() {
	n := c.taken
	c.taken, c.takenBytes = 0, 0
	c.mu.Unlock()
	if n > 0 {
		c.credit(uint64(n), 0)
	}
}

// next returns the next item with the size of its envelope, or reports
// false with the stream's error (nil at its end) once none is left or
// ctx ended. The worker never waits for an acknowledgement that waits
// for the loop: both ends count the same envelopes, and the loop
// acknowledges half a window of items or of bytes, which the worker
// always sends without waiting.
func (c *streamCall) next(ctx context.Context) (raw []byte, size int, err error, ok bool) {
	for {
		if err := ctx.Err(); err != nil {
			c.abort(err)
		}
		c.mu.Lock()
		if c.ended && c.err != nil && ctx.Err() != nil {
			err := c.err
			c.mu.Unlock()
			return nil, 0, err, false // ctx's end: what is queued is dropped by stop
		}
		if len(c.queue) > 0 {
			raw, size = c.queue[0], c.sizes[0]
			c.queue[0] = nil
			c.queue, c.sizes = c.queue[1:], c.sizes[1:]
			c.mu.Unlock()
			return raw, size, nil, true
		}
		if c.ended {
			err := c.err
			c.mu.Unlock()
			return nil, 0, err, false
		}
		c.mu.Unlock()
		if c.s.lane != nil {
			c.s.awaitLane(ctx, c)
		} else {
			select {
			case <-c.doneChan():
			case <-ctx.Done():
			}
		}
	}
}

// stop ends the stream when the loop leaves: the worker cancels the
// producer, and the items still queued are dropped.
func (c *streamCall) stop() {
	c.mu.Lock()
	c.stopping = true
	ended := c.ended
	queue := c.queue
	c.queue, c.sizes = nil, nil
	id := c.id
	c.mu.Unlock()
	for _, raw := range queue {
		if codec.HasShm(raw) {
			codec.DropTransits(raw)
		}
	}
	if !ended && id != 0 {
		c.s.cancelCall(id)
		c.resolve(nil, nil, context.Canceled)
	}
}

// The lane's waiter (laneWaiter): the loop waits for an item, not for the
// whole stream.

func (c *streamCall) finished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readyLocked()
}

// readyLocked reports whether next has something to return: an item, or
// the stream's end; c.mu held.
func (c *streamCall) readyLocked() bool { return len(c.queue) > 0 || c.ended }

func (c *streamCall) doneChan() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readyLocked() {
		done := make(chan struct{})
		close(done)
		return done
	}
	return c.ready
}

func (c *streamCall) setKick(kick func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if kick != nil && c.readyLocked() {
		return false
	}
	c.kick = kick
	return true
}

// The rest of pendingCall.

func (c *streamCall) watch(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { c.abort(ctx.Err()) })
	c.mu.Lock()
	if !c.ended {
		c.unwatch = stop
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	stop()
}

func (c *streamCall) setPins(pins []*refEntry) {
	c.mu.Lock()
	if !c.ended {
		c.pins = pins
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	unpinAll(pins)
}

// guardShm: the final reply of a stream carries nothing to decode.
func (c *streamCall) guardShm(raw []byte) { codec.DropTransits(raw) }

func (c *streamCall) giveBack(buf []byte) {
	c.mu.Lock()
	c.joined = buf
	c.mu.Unlock()
}

// progress: a stream's reports are shown by the worker's pending verb;
// the loop gets items only.
func (c *streamCall) progress([]byte) {}

func (c *streamCall) group() *ctxGroup     { return c.grp }
func (c *streamCall) setGroup(g *ctxGroup) { c.grp = g }
