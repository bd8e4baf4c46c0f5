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
	"github.com/processional/processional/internal/serve"
	"github.com/processional/processional/internal/wire"
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
		data, err := wire.AppendCall(nil, &wire.Call{Kind: wire.KindThread, Master: s.m.id, Function: "@release"}, list[:n])
		if err == nil {
			s.m.nc.Publish(s.subject, data) // a closed connection: the worker forgets us anyway
		}
		list = list[n:]
	}
}

// callCodec is what a call's argument encoding collects: the Refs it
// carries, held until the task ends.
type callCodec struct {
	pins   []*refEntry
	shmPID int // the receiver's pid when it shares our /dev/shm
}

// ShmReceiver is the pid shared-memory buffers are sent to by reference,
// or 0 to copy them.
func (c *callCodec) ShmReceiver() int { return c.shmPID }

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
	t := newTask[struct{}]("@acquire")
	s.send(ctx, wire.KindThread, "@acquire", "", targetArg{o}, t, true)
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
			s.finish()
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

// The arguments of object operations, as the worker decodes them.
type (
	targetArg struct {
		Target wire.ObjectRef
	}
	wrapArg struct {
		Function string
		ArgType  string
		Arg      any
	}
	callArg struct {
		Target  *Ref
		Method  string
		WantRef bool
		Args    []any
	}
	memberArg struct {
		Target  *Ref
		Key     any
		WantRef bool
	}
	setArg struct {
		Target *Ref
		Key    any
		Value  any
	}
)

func (a targetArg) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(1); err != nil {
		return err
	}
	return a.Target.EncodeMsgpack(enc)
}

func (a *wrapArg) EncodeMsgpack(enc *msgpack.Encoder) error {
	return encodeArray(enc, a.Function, a.ArgType, a.Arg)
}

func (a *callArg) EncodeMsgpack(enc *msgpack.Encoder) error {
	return encodeArray(enc, a.Target, a.Method, a.WantRef, a.Args)
}

// AppendMsgpack writes the call's array by hand: it is on every method
// call's path.
func (a *callArg) AppendMsgpack(dst []byte, ctx any) ([]byte, error) {
	dst = codec.AppendArrayHeader(dst, 4)
	dst, err := a.Target.appendRef(dst, ctx)
	if err != nil {
		return dst, err
	}
	dst = codec.AppendString(dst, a.Method)
	dst = codec.AppendBool(dst, a.WantRef)
	dst = codec.AppendArrayHeader(dst, len(a.Args))
	for _, x := range a.Args {
		if dst, err = codec.AppendValueWith(dst, x, ctx); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func (a *memberArg) EncodeMsgpack(enc *msgpack.Encoder) error {
	return encodeArray(enc, a.Target, a.Key, a.WantRef)
}

func (a *setArg) EncodeMsgpack(enc *msgpack.Encoder) error {
	return encodeArray(enc, a.Target, a.Key, a.Value)
}

func encodeArray(enc *msgpack.Encoder, vs ...any) error {
	if err := enc.EncodeArrayLen(len(vs)); err != nil {
		return err
	}
	for _, v := range vs {
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	return nil
}

// refTask is the task of an operation whose result is a reference: the
// reply's reference becomes a Ref as soon as it arrives, so that it is
// released even if nobody waits for it.
type refTask struct {
	*Task[*Ref]
	s    *slave
	keep *Slave
}

func (t refTask) resolve(raw []byte, remote *bus.RemoteError, err error) {
	if raw == nil || err != nil || remote != nil {
		t.Task.resolve(raw, remote, err)
		return
	}
	o, derr := wire.DecodeRef(raw)
	if derr != nil {
		t.Task.finish(nil, nil, fmt.Errorf("%w: %s: the worker's reply is not a reference: %v", bus.ErrResultType, t.name, derr))
		return
	}
	h := new(Ref)
	t.s.adopt(h, o, nil, t.keep)
	if !t.Task.finish(h, nil, nil) {
		h.Close()
	}
}

// Wrap runs the registered function ctor on the worker s and keeps its
// result there, in the worker's table, returning a Ref to it. ctor's result
// type need not travel: register it with [bus.RegisterConstructor].
func Wrap[A, R any](ctx context.Context, s *Slave, ctor *bus.Func[A, R], arg A) (*Ref, error) {
	ctx = orBackground(ctx)
	if ctor == nil {
		return nil, fmt.Errorf("%w: Wrap: nil constructor", ErrBadCall)
	}
	if s == nil || s.slave == nil || s.m == nil {
		return nil, fmt.Errorf("%w: Wrap: a nil or zero Slave: get one from Spawn", ErrBadCall)
	}
	t := refTask{newTask[*Ref](ctor.Name()), s.slave, s}
	s.send(ctx, wire.KindCall, "@wrap", "", &wrapArg{ctor.Name(), typeName[A](), arg}, t, true)
	runtime.KeepAlive(s)
	return wait(ctx, t.Task)
}

// usable reports why r cannot be used.
func (r *Ref) usable() error {
	if r == nil || r.ref == nil {
		return fmt.Errorf("%w: a nil or zero Ref", ErrBadCall)
	}
	if r.closed.Load() {
		return fmt.Errorf("%w: %s: the Ref is closed", bus.ErrObjectGone, r.e.obj)
	}
	return nil
}

// callable reports why the method name of r's object cannot be called
// with args.
func (r *Ref) callable(name string, args []any) error {
	if err := r.usable(); err != nil {
		return err
	}
	if len(args) > wire.MaxArgs {
		return fmt.Errorf("%w: %s.%s: %d arguments, at most %d", bus.ErrArgumentType, r.e.obj.Type, name, len(args), wire.MaxArgs)
	}
	return nil
}

// op sends the object operation fn with arg, as a task of kind on r's
// worker, into t.
func (r *Ref) op(ctx context.Context, kind wire.Kind, fn string, arg any, t pendingCall) {
	r.e.s.send(ctx, kind, fn, "", arg, t, true)
	runtime.KeepAlive(r) // dropping the Ref releases the object: not before the call is sent
}

// Method calls the exported method name of r's object with args, and
// returns its task at once; the task runs on the object's worker after
// the calls sent before it, as [Schedule] does. The arguments are decoded
// into the method's parameter types; a method whose first parameter is a
// context.Context receives the task's context there, and args start with
// the next one. The task's result is the method's result decoded into T
// (two results or more arrive as a []any, or any struct tagged
// `msgpack:",as_array"`); a trailing error result is the task's error.
func Method[T any](ctx context.Context, r *Ref, name string, args ...any) *Task[T] {
	return method[T](orBackground(ctx), r, wire.KindCall, name, args)
}

// ThreadMethod is [Method] for a call that runs concurrently with the
// worker's other calls, as [Thread] does.
func ThreadMethod[T any](ctx context.Context, r *Ref, name string, args ...any) *Task[T] {
	return method[T](orBackground(ctx), r, wire.KindThread, name, args)
}

func method[T any](ctx context.Context, r *Ref, kind wire.Kind, name string, args []any) *Task[T] {
	if err := r.callable(name, args); err != nil {
		return failed[T](name, err)
	}
	t := newTask[T](r.e.obj.Type + "." + name)
	r.op(ctx, kind, "@call", &callArg{Target: r, Method: name, Args: orEmpty(args)}, t)
	return t
}

func orEmpty(args []any) []any {
	if args == nil {
		return []any{}
	}
	return args
}

// Call calls the exported method name of r's object with args and waits
// for its result, as [Method] does with [Invoke]'s blocking.
func (r *Ref) Call(ctx context.Context, name string, args ...any) (any, error) {
	ctx = orBackground(ctx)
	return wait(ctx, method[any](ctx, r, wire.KindCall, name, args))
}

// CallRef calls the method name as [Ref.Call] does, but keeps its result
// on the worker and returns a Ref to it: for a result that cannot travel
// (a connection, a file) or that should stay where it is. The method must
// return one value, with or without an error.
func (r *Ref) CallRef(ctx context.Context, name string, args ...any) (*Ref, error) {
	ctx = orBackground(ctx)
	if err := r.callable(name, args); err != nil {
		return nil, err
	}
	t := refTask{newTask[*Ref](r.e.obj.Type + "." + name), r.e.s, r.e.keep}
	r.op(ctx, wire.KindCall, "@call", &callArg{Target: r, Method: name, WantRef: true, Args: orEmpty(args)}, t)
	return wait(ctx, t.Task)
}

// member reads a field (fn "@get") or an item ("@index") of r's object.
func member[T any](ctx context.Context, r *Ref, fn string, key any) (T, error) {
	ctx = orBackground(ctx)
	if err := r.usable(); err != nil {
		var zero T
		return zero, err
	}
	t := newTask[T](memberName(r, fn, key))
	r.op(ctx, wire.KindCall, fn, &memberArg{Target: r, Key: key}, t)
	return wait(ctx, t)
}

func memberRef(ctx context.Context, r *Ref, fn string, key any) (*Ref, error) {
	ctx = orBackground(ctx)
	if err := r.usable(); err != nil {
		return nil, err
	}
	t := refTask{newTask[*Ref](memberName(r, fn, key)), r.e.s, r.e.keep}
	r.op(ctx, wire.KindCall, fn, &memberArg{Target: r, Key: key, WantRef: true}, t)
	return wait(ctx, t.Task)
}

func setMember(ctx context.Context, r *Ref, fn string, key, value any) error {
	ctx = orBackground(ctx)
	if err := r.usable(); err != nil {
		return err
	}
	t := newTask[struct{}](memberName(r, fn, key))
	r.op(ctx, wire.KindCall, fn, &setArg{Target: r, Key: key, Value: value}, t)
	_, err := wait(ctx, t)
	return err
}

// memberName names a field ("T.Name") or an item ("T[key]") for reports.
func memberName(r *Ref, fn string, key any) string {
	if fn == "@get" || fn == "@set" {
		return fmt.Sprintf("%s.%v", r.e.obj.Type, key)
	}
	return fmt.Sprintf("%s[%v]", r.e.obj.Type, key)
}

// Get reads the exported field name of r's object (a struct, or a pointer
// to one).
func (r *Ref) Get(ctx context.Context, name string) (any, error) {
	return member[any](ctx, r, "@get", name)
}

// Field reads the exported field name of r's object into a T.
func Field[T any](ctx context.Context, r *Ref, name string) (T, error) {
	return member[T](ctx, r, "@get", name)
}

// FieldRef returns a Ref to the value of field name, which stays on the
// worker.
func (r *Ref) FieldRef(ctx context.Context, name string) (*Ref, error) {
	return memberRef(ctx, r, "@get", name)
}

// Set sets the exported field name of r's object to value, decoded into
// the field's type.
func (r *Ref) Set(ctx context.Context, name string, value any) error {
	return setMember(ctx, r, "@set", name, value)
}

// Index reads the item of r's object (a map, a slice, an array or a
// string, or a pointer to one) at key: a map's key, or an int index.
func (r *Ref) Index(ctx context.Context, key any) (any, error) {
	return member[any](ctx, r, "@index", key)
}

// Item reads the item of r's object at key into a T.
func Item[T any](ctx context.Context, r *Ref, key any) (T, error) {
	return member[T](ctx, r, "@index", key)
}

// ItemRef returns a Ref to the item at key, which stays on the worker.
func (r *Ref) ItemRef(ctx context.Context, key any) (*Ref, error) {
	return memberRef(ctx, r, "@index", key)
}

// SetIndex sets the item of r's object at key to value: a map's key is
// added if absent; a slice's index must be in range.
func (r *Ref) SetIndex(ctx context.Context, key, value any) error {
	return setMember(ctx, r, "@setindex", key, value)
}

// Unwrap copies r's object to the master, decoded into a T. An object with
// a part that cannot travel (a func, a chan) fails with an error wrapping
// [bus.ErrEncode] that names that part.
func Unwrap[T any](ctx context.Context, r *Ref) (T, error) {
	ctx = orBackground(ctx)
	if err := r.usable(); err != nil {
		var zero T
		return zero, err
	}
	t := newTask[T](r.e.obj.Type)
	r.op(ctx, wire.KindCall, "@unwrap", targetArgRef{r}, t)
	return wait(ctx, t)
}

type targetArgRef struct{ r *Ref }

func (a targetArgRef) EncodeMsgpack(enc *msgpack.Encoder) error {
	return encodeArray(enc, a.r)
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

// Object is how the Ref travels: its worker, id and type.
func (r *Ref) Object() wire.ObjectRef {
	if r == nil || r.ref == nil {
		return wire.ObjectRef{}
	}
	return r.e.obj
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

// Export puts obj (a pointer to a struct, a map, any value with methods) in
// a table the master serves on its own subjects, and returns a Ref to it:
// passed to a worker, that Ref lets the worker call back into the master.
// The master keeps obj while a Ref to it is open, here or on a worker.
func (m *Master) Export(ctx context.Context, obj any) (*Ref, error) {
	ctx = orBackground(ctx)
	w, err := m.exportServer()
	if err != nil {
		return nil, err
	}
	s, err := m.slaveOf(ctx, w.ID())
	if err != nil {
		return nil, err
	}
	o, err := w.Keep(obj, m.id)
	if err != nil {
		return nil, err
	}
	h := new(Ref)
	s.adopt(h, o, w.Object, nil)
	return h, nil
}

// exportServer returns the worker that serves the master's exports,
// starting it the first time.
func (m *Master) exportServer() (*serve.Worker, error) {
	m.exportMu.Lock()
	defer m.exportMu.Unlock()
	if m.isClosed() {
		return nil, fmt.Errorf("%w: master %s is closed", bus.ErrClosed, m.id)
	}
	if m.exports == nil {
		w, err := serve.Serve(m.nc, serve.Config{ID: m.id + "-exports"})
		if err != nil {
			return nil, err
		}
		m.exports = w
	}
	return m.exports, nil
}
