package master

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/peer"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/shm"
)

// Ref is a reference to an object that lives on a worker: made there by a
// constructor ([Wrap]), kept there as a method's result ([Ref.CallRef]),
// or exported by a master ([Master.Export]). Its methods call the
// object's methods by reflection, read and set its fields and items, with
// no declaration on the worker's side. Every call through a Ref is a task
// on the object's worker like any other: blocking calls keep their order,
// [ThreadMethod] runs concurrently, the caller's context bounds and
// cancels it.
//
// The worker keeps the object while some Ref to it is open, in any master
// or worker. [Ref.Close] lets go of this one, as does the garbage collector
// once the Ref is unreachable; so does the master's Close, or its death
// (its lease lapses). The worker then drops the object, and closes it if it
// is an io.Closer.
//
// A Ref passed in the argument of a call travels as a reference: to the
// object's own worker, as a method's argument, it arrives as the object
// itself (the same pointer); to another worker it arrives as a working
// *Ref that calls the object's worker directly, and holds the object as
// long as it is open there. A Ref cannot travel in a result. Its methods
// are safe for concurrent use.
//
// The blocking calls a worker makes through the Refs it received run in
// one order per pair of workers, as a master's do. A method that calls
// back, through a Ref, into a worker whose queue waits on it (A calls B,
// which calls A, which calls B again) waits for itself: make calls that
// may call back with [ThreadMethod].
//
// A released object is closed if it is an io.Closer and the worker made it
// for a Ref: a constructor's result ([Wrap]) or a method's ([Ref.CallRef]);
// never a field's or an item's value, nor an exported object.
type Ref struct {
	*ref
}

type ref struct {
	e      *refEntry
	closed atomic.Bool
}

// refEntry is a master's hold on one object of one worker, shared by all
// the master's Refs to it. Its counts are guarded by its slave's mu.
type refEntry struct {
	s        *slave
	obj      wire.ObjectRef
	local    func(id uint64) (any, bool) // the object, when it lives in this process
	keep     *Slave                      // the user's handle on the worker, kept reachable while a Ref is
	handles  int64                       // open Refs
	grants   int64                       // references the worker granted this master, to release
	inflight int64                       // tasks in flight that carry a Ref to it
	released bool
}

// releaseDelay is how long released references wait to be sent in one
// batch: dropping a million Refs sends a few messages, not a million.
const releaseDelay = 5 * time.Millisecond

// releaseBatch is the most references one release message carries.
const releaseBatch = 4096

// adopt fills h as a Ref to o, which the worker granted this master once
// more, and has the garbage collector close h when it is unreachable.
func (s *slave) adopt(h *Ref, o wire.ObjectRef, local func(uint64) (any, bool), keep *Slave) {
	s.mu.Lock()
	if s.refs == nil {
		s.refs = make(map[uint64]*refEntry)
	}
	e := s.refs[o.ID]
	if e == nil {
		e = &refEntry{s: s, obj: o, local: local, keep: keep}
		s.refs[o.ID] = e
	}
	e.grants++
	e.handles++
	s.mu.Unlock()
	h.ref = &ref{e: e}
	runtime.AddCleanup(h, func(r *ref) { r.drop() }, h.ref)
}

// releaseGrant gives back a reference the worker granted and nobody took:
// the reply that carried it came after its task ended.
func (s *slave) releaseGrant(o wire.ObjectRef) {
	h := new(Ref)
	s.adopt(h, o, nil, nil)
	h.Close()
}

func (r *ref) drop() {
	if r.closed.Swap(true) {
		return
	}
	s := r.e.s
	s.mu.Lock()
	r.e.handles--
	s.maybeReleaseLocked(r.e)
	s.mu.Unlock()
}

// pin counts one more task in flight that carries a Ref to e's object.
func (e *refEntry) pin() {
	e.s.mu.Lock()
	e.inflight++
	e.s.mu.Unlock()
}

func (e *refEntry) unpin() {
	s := e.s
	s.mu.Lock()
	e.inflight--
	s.maybeReleaseLocked(e)
	s.mu.Unlock()
}

func unpinAll(pins []*refEntry) {
	for _, e := range pins {
		e.unpin()
	}
}

// maybeReleaseLocked queues the release of e once no Ref and no task
// holds it; s.mu held.
func (s *slave) maybeReleaseLocked(e *refEntry) {
	if e.handles > 0 || e.inflight > 0 || e.released {
		return
	}
	e.released = true
	if s.refs[e.obj.ID] == e {
		delete(s.refs, e.obj.ID)
	}
	if s.state == slaveGone {
		return // the worker forgot the master, and its objects with it
	}
	s.releases = append(s.releases, e.obj.ID, uint64(e.grants))
	if !s.releaseQueued {
		s.releaseQueued = true
		// Not awaited by Master.Close: once it closed, its slaves are
		// gone, and the flush sends nothing.
		time.AfterFunc(releaseDelay, s.flushReleases)
	}
}

// flushReleases sends the queued releases, in batches.
func (s *slave) flushReleases() {
	s.mu.Lock()
	list := s.releases
	s.releases, s.releaseQueued = nil, false
	open := s.state != slaveGone
	s.mu.Unlock()
	for open && len(list) > 0 {
		n := min(len(list), 2*releaseBatch)
		data, err := wire.AppendCall(nil, &wire.Call{Kind: wire.KindThread, Master: s.m.id, Function: wire.OpRelease}, list[:n])
		if err == nil {
			s.publish(data) // a closed connection: the worker forgets us anyway
		}
		list = list[n:]
	}
}

// callCodec is what a call's argument encoding collects: the Refs it
// carries, held until the task ends.
type callCodec struct {
	pins     []*refEntry
	shmPID   int              // the receiver's pid when it shares our /dev/shm
	lane     bool             // the call goes on the worker's lane
	maxValue uint64           // the master's max value
	sending  []*shm.Transient // transient segments made for the call, closed once it is sent
	shm      bool             // the call refers to shared-memory buffers by reference
}

// SentShm notes that the call refers to a shared-memory buffer by
// reference (codec.ShmSender).
func (c *callCodec) SentShm() { c.shm = true }

// ShmReceiver is the pid shared-memory buffers are sent to by reference,
// or 0 to copy them.
func (c *callCodec) ShmReceiver() int { return c.shmPID }

// TransientTo is the pid a big argument goes to in a transient segment:
// the receiver's when it shares our /dev/shm, unless the call goes on its
// lane, where one frame costs less (codec.TransientReceiver).
func (c *callCodec) TransientTo() int {
	if c.lane {
		return 0
	}
	return c.shmPID
}

// MaxValue is the largest argument the master sends
// (codec.TransientReceiver).
func (c *callCodec) MaxValue() uint64 { return c.maxValue }

// Sending keeps a transient segment made for the call, to close once the
// call is sent (codec.TransientReceiver).
func (c *callCodec) Sending(t *shm.Transient) { c.sending = append(c.sending, t) }

// EncodeMsgpack writes the reference. It is called while a call's argument
// is encoded, and holds the object until the call's task ends.
func (r *Ref) EncodeMsgpack(enc *msgpack.Encoder) error {
	if r == nil || r.ref == nil {
		return enc.EncodeNil()
	}
	var buf [128]byte
	b, err := r.appendRef(buf[:0], codec.EncoderContext(enc))
	if err != nil {
		return err
	}
	_, err = enc.Writer().Write(b)
	return err
}

// appendRef appends the reference, pinning it in ctx, the call's codec.
func (r *Ref) appendRef(dst []byte, ctx any) ([]byte, error) {
	cc, _ := ctx.(*callCodec)
	if cc == nil {
		return dst, fmt.Errorf("%w: %s: a Ref travels in a call's argument, not in a result or by codec.Marshal", ErrBadCall, r.e.obj)
	}
	if r.closed.Load() {
		return dst, fmt.Errorf("%w: %s: the Ref is closed", bus.ErrObjectGone, r.e.obj)
	}
	r.e.pin()
	cc.pins = append(cc.pins, r.e)
	o := r.e.obj
	o.Holder = r.e.s.m.id // who passes it on: the receiver acquires from us
	return wire.AppendRef(dst, o), nil
}

// DecodeMsgpack binds the reference that arrives in a call's argument on a
// worker: the worker acquires a reference of its own from the object's
// worker, which it holds while this Ref is open.
func (r *Ref) DecodeMsgpack(dec *msgpack.Decoder) error {
	var o wire.ObjectRef
	if err := o.DecodeMsgpack(dec); err != nil {
		return err
	}
	return r.bindArg(dec, o)
}

func init() {
	// A reference in an `any` (an element of a []any, a value of a
	// map[string]any) arrives as a *Ref too, not as msgpack's "unknown
	// ext id=1".
	msgpack.RegisterExtDecoder(wire.RefExtType, (*Ref)(nil), func(dec *msgpack.Decoder, v reflect.Value, n int) error {
		o, err := wire.ReadRefBody(dec, n)
		if err != nil {
			return err
		}
		return v.Interface().(*Ref).bindArg(dec, o)
	})
	// RegisterExtDecoder also took over *Ref's typed decoding: give it
	// back to DecodeMsgpack, whose errors say what was wrong.
	msgpack.Register((*Ref)(nil), nil, func(dec *msgpack.Decoder, v reflect.Value) error {
		if c, err := dec.PeekCode(); err == nil && c == msgpcode.Nil {
			v.Set(reflect.Zero(v.Type()))
			return dec.DecodeNil()
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return v.Interface().(*Ref).DecodeMsgpack(dec)
	})
}

// bindArg binds r to o, a reference that arrived in a call's argument.
func (r *Ref) bindArg(dec *msgpack.Decoder, o wire.ObjectRef) error {
	pc, _ := codec.DecoderContext(dec).(*peer.Context)
	if pc == nil {
		return fmt.Errorf("%w: %s: a reference arrives only in a call's argument on a worker", ErrBadCall, o)
	}
	if pc.Probe {
		return nil // the worker asks what a reference decodes to: a *Ref, unbound
	}
	// The worker's Master, goroutines and all, lives until the worker
	// closes pc.
	c, err := pc.Client(func() (io.Closer, error) {
		return New(context.Background(), WithConn(pc.Conn), withID(pc.ID))
	})
	if err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	var local func(uint64) (any, bool)
	if o.Worker == pc.ID {
		local = pc.Local
	}
	return c.(*Master).bind(r, o, local)
}

// bindTimeout bounds the acquiring of a reference received in a call.
const bindTimeout = 10 * time.Second

// bind makes h a Ref of m's to o: it acquires a reference from o's worker.
func (m *Master) bind(h *Ref, o wire.ObjectRef, local func(uint64) (any, bool)) error {
	ctx, cancel := context.WithTimeout(context.Background(), bindTimeout)
	defer cancel()
	s, err := m.slaveOf(ctx, o.Worker)
	if err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	t := newTask[struct{}](wire.OpAcquire)
	s.send(ctx, wire.KindThread, wire.OpAcquire, "", wire.TargetOp[wire.ObjectRef]{Target: o}, t, watchGroup)
	if _, err := t.Wait(ctx); err != nil {
		return fmt.Errorf("%s: acquire: %w", o, err)
	}
	s.adopt(h, o, local, nil)
	return nil
}

// slaveOf returns m's slave for worker id, attaching to it the first
// time; concurrent callers wait for one attach.
func (m *Master) slaveOf(ctx context.Context, id string) (*slave, error) {
	for {
		m.mu.Lock()
		if s := m.slaves[id]; s != nil {
			m.mu.Unlock()
			s.mu.Lock()
			gone := s.state == slaveGone
			s.mu.Unlock()
			if !gone {
				return s, nil
			}
			// The worker went away (or restarted under the same id):
			// forget it, and attach again.
			s.unregister()
			continue
		}
		if wait := m.attaching[id]; wait != nil {
			m.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if m.attaching == nil {
			m.attaching = make(map[string]chan struct{})
		}
		done := make(chan struct{})
		m.attaching[id] = done
		m.mu.Unlock()
		s, err := m.attach(ctx, id)
		m.mu.Lock()
		delete(m.attaching, id)
		m.mu.Unlock()
		close(done)
		return s, err
	}
}

// Close lets go of the Ref: the object is released on its worker once no
// Ref and no task in flight holds it, in this master or elsewhere. Calls
// through a closed Ref fail with [bus.ErrObjectGone]. It is idempotent.
func (r *Ref) Close() error {
	if r == nil || r.ref == nil {
		return nil
	}
	r.drop()
	return nil
}

// ObjectRef is how a [Ref] travels: the worker that holds the object, the
// object's id in that worker's table, its Go type, the secret the worker
// drew for it (the worker takes no reference that lacks it), and the
// master passing it on, if any.
type ObjectRef struct {
	Worker string
	ID     uint64
	Type   string
	Secret uint64
	Holder string // the master passing the reference on; empty otherwise
}

// Object is how the Ref travels: its worker, id, type and secret. A zero
// or nil Ref gives the zero ObjectRef.
func (r *Ref) Object() ObjectRef {
	if r == nil || r.ref == nil {
		return ObjectRef{}
	}
	return ObjectRef(r.e.obj)
}

// String describes the Ref, as "*main.Counter 3 on worker w-…".
func (r *Ref) String() string {
	if r == nil || r.ref == nil {
		return "nil Ref"
	}
	return r.e.obj.String()
}

// Local returns the object itself when it lives in this process: on the
// worker that holds it, or in the master that exported it.
func (r *Ref) Local() (any, bool) {
	if r == nil || r.ref == nil || r.e.local == nil || r.closed.Load() {
		return nil, false
	}
	return r.e.local(r.e.obj.ID)
}
