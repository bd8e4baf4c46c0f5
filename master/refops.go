package master

import (
	"context"
	"fmt"
	"runtime"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// The arguments of the object operations as a master encodes them: the
// target a Ref, the values Go values.
type (
	wrapOp   = wire.WrapOp[any]
	callOp   = wire.CallOp[target, any]
	memberOp = wire.MemberOp[target, any]
	setOp    = wire.SetOp[target, any]
)

// target is a Ref as the target of an operation. It appends itself
// (codec.Appender) in the hand-written array of a method call, and is
// pinned for the task as a Ref in an argument is.
type target struct{ r *Ref }

func (t target) AppendMsgpack(dst []byte, ctx any) ([]byte, error) { return t.r.appendRef(dst, ctx) }

func (t target) EncodeMsgpack(enc *msgpack.Encoder) error { return t.r.EncodeMsgpack(enc) }

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
	s.send(ctx, wire.KindCall, wire.OpWrap, "", &wrapOp{Function: ctor.Name(), ArgType: typeName[A](), Arg: arg}, t, watchGroup)
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
	r.e.s.send(ctx, kind, fn, "", arg, t, watchGroup)
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
	r.op(ctx, kind, wire.OpCall, &callOp{Target: target{r}, Method: name, Args: orEmpty(args)}, t)
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
	r.op(ctx, wire.KindCall, wire.OpCall, &callOp{Target: target{r}, Method: name, WantRef: true, Args: orEmpty(args)}, t)
	return wait(ctx, t.Task)
}

// member reads a field (fn wire.OpGet) or an item (wire.OpIndex) of r's
// object.
func member[T any](ctx context.Context, r *Ref, fn string, key any) (T, error) {
	ctx = orBackground(ctx)
	if err := r.usable(); err != nil {
		var zero T
		return zero, err
	}
	t := newTask[T](memberName(r, fn, key))
	r.op(ctx, wire.KindCall, fn, &memberOp{Target: target{r}, Key: key}, t)
	return wait(ctx, t)
}

func memberRef(ctx context.Context, r *Ref, fn string, key any) (*Ref, error) {
	ctx = orBackground(ctx)
	if err := r.usable(); err != nil {
		return nil, err
	}
	t := refTask{newTask[*Ref](memberName(r, fn, key)), r.e.s, r.e.keep}
	r.op(ctx, wire.KindCall, fn, &memberOp{Target: target{r}, Key: key, WantRef: true}, t)
	return wait(ctx, t.Task)
}

func setMember(ctx context.Context, r *Ref, fn string, key, value any) error {
	ctx = orBackground(ctx)
	if err := r.usable(); err != nil {
		return err
	}
	t := newTask[struct{}](memberName(r, fn, key))
	r.op(ctx, wire.KindCall, fn, &setOp{Target: target{r}, Key: key, Value: value}, t)
	_, err := wait(ctx, t)
	return err
}

// memberName names a field ("T.Name") or an item ("T[key]") for reports.
func memberName(r *Ref, fn string, key any) string {
	if fn == wire.OpGet || fn == wire.OpSet {
		return fmt.Sprintf("%s.%v", r.e.obj.Type, key)
	}
	return fmt.Sprintf("%s[%v]", r.e.obj.Type, key)
}

// Get reads the exported field name of r's object (a struct, or a pointer
// to one).
func (r *Ref) Get(ctx context.Context, name string) (any, error) {
	return member[any](ctx, r, wire.OpGet, name)
}

// Field reads the exported field name of r's object into a T.
func Field[T any](ctx context.Context, r *Ref, name string) (T, error) {
	return member[T](ctx, r, wire.OpGet, name)
}

// FieldRef returns a Ref to the value of field name, which stays on the
// worker.
func (r *Ref) FieldRef(ctx context.Context, name string) (*Ref, error) {
	return memberRef(ctx, r, wire.OpGet, name)
}

// Set sets the exported field name of r's object to value, decoded into
// the field's type.
func (r *Ref) Set(ctx context.Context, name string, value any) error {
	return setMember(ctx, r, wire.OpSet, name, value)
}

// Index reads the item of r's object (a map, a slice, an array or a
// string, or a pointer to one) at key: a map's key, or an int index.
func (r *Ref) Index(ctx context.Context, key any) (any, error) {
	return member[any](ctx, r, wire.OpIndex, key)
}

// Item reads the item of r's object at key into a T.
func Item[T any](ctx context.Context, r *Ref, key any) (T, error) {
	return member[T](ctx, r, wire.OpIndex, key)
}

// ItemRef returns a Ref to the item at key, which stays on the worker.
func (r *Ref) ItemRef(ctx context.Context, key any) (*Ref, error) {
	return memberRef(ctx, r, wire.OpIndex, key)
}

// SetIndex sets the item of r's object at key to value: a map's key is
// added if absent; a slice's index must be in range.
func (r *Ref) SetIndex(ctx context.Context, key, value any) error {
	return setMember(ctx, r, wire.OpSetIndex, key, value)
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
	r.op(ctx, wire.KindCall, wire.OpUnwrap, wire.TargetOp[target]{Target: target{r}}, t)
	return wait(ctx, t)
}
