package wire

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/internal/codec"
)

// The object operations. A master works on the objects a worker holds
// with calls to these reserved function names (a registered function's
// name never starts with '@'), each with its argument below: a msgpack
// array of the struct's fields in order. They are calls like any other:
// they keep the order of a master's blocking calls, run concurrently as
// thread calls, honour deadlines and cancellation.
//
// The argument structs are generic in how each side holds the values: a
// master encodes its references (T) and its Go values (V, an any); a
// worker decodes both as [msgpack.RawMessage], which alias the message,
// so that reflection runs only for what the object's types need.
const (
	OpWrap     = "@wrap"     // run a constructor, keep its result: WrapOp
	OpCall     = "@call"     // call a method: CallOp
	OpGet      = "@get"      // read a field: MemberOp, Key the field's name
	OpSet      = "@set"      // set a field: SetOp, Key the field's name
	OpIndex    = "@index"    // read an item: MemberOp, Key a map's key or an int
	OpSetIndex = "@setindex" // set an item: SetOp
	OpUnwrap   = "@unwrap"   // copy the object to the caller: TargetOp
	OpAcquire  = "@acquire"  // one more reference for the caller, from the Target's Holder: TargetOp
	OpRelease  = "@release"  // release references: a []uint64 of id, count, id, count…
)

// IsOp reports whether function names an object operation rather than a
// registered function.
func IsOp(function string) bool { return len(function) > 0 && function[0] == '@' }

// WrapOp is the argument of [OpWrap]: the registered constructor, the
// type of its argument as the master names it, and the argument.
type WrapOp[V any] struct {
	Function string
	ArgType  string
	Arg      V
}

// CallOp is the argument of [OpCall]: the method Method of Target's
// object with Args; WantRef keeps the result on the worker and answers a
// reference to it.
type CallOp[T, V any] struct {
	Target  T
	Method  string
	WantRef bool
	Args    []V
}

// MemberOp is the argument of [OpGet] and [OpIndex]: the field or item
// Key of Target's object; WantRef answers a reference to it.
type MemberOp[T, V any] struct {
	Target  T
	Key     V
	WantRef bool
}

// SetOp is the argument of [OpSet] and [OpSetIndex]: the field or item
// Key of Target's object set to Value.
type SetOp[T, V any] struct {
	Target T
	Key    V
	Value  V
}

// TargetOp is the argument of [OpUnwrap] and [OpAcquire].
type TargetOp[T any] struct {
	Target T
}

// EncodeMsgpack writes the argument's array.
func (a WrapOp[V]) EncodeMsgpack(enc *msgpack.Encoder) error {
	return encodeArray(enc, a.Function, a.ArgType, a.Arg)
}

// EncodeMsgpack writes the argument's array.
func (a CallOp[T, V]) EncodeMsgpack(enc *msgpack.Encoder) error {
	return encodeArray(enc, a.Target, a.Method, a.WantRef, a.Args)
}

// AppendMsgpack appends the argument's array by hand, as
// [CallOp.EncodeMsgpack] writes it, with no msgpack encoder in between:
// it is on every method call's path. The target and each argument are
// encoded with ctx ([codec.AppendValueWith]); a target that is a
// [codec.Appender] and one pointer (boxed without allocating) costs no
// allocation.
func (a CallOp[T, V]) AppendMsgpack(dst []byte, ctx any) ([]byte, error) {
	dst = codec.AppendArrayHeader(dst, 4)
	dst, err := codec.AppendValueWith(dst, a.Target, ctx)
	if err != nil {
		return dst, err
	}
	dst = codec.AppendStr(dst, a.Method)
	dst = codec.AppendBool(dst, a.WantRef)
	if a.Args == nil {
		return append(dst, 0xc0), nil
	}
	dst = codec.AppendArrayHeader(dst, len(a.Args))
	for _, x := range a.Args {
		if dst, err = codec.AppendValueWith(dst, x, ctx); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// EncodeMsgpack writes the argument's array.
func (a MemberOp[T, V]) EncodeMsgpack(enc *msgpack.Encoder) error {
	return encodeArray(enc, a.Target, a.Key, a.WantRef)
}

// EncodeMsgpack writes the argument's array.
func (a SetOp[T, V]) EncodeMsgpack(enc *msgpack.Encoder) error {
	return encodeArray(enc, a.Target, a.Key, a.Value)
}

// EncodeMsgpack writes the argument's array.
func (a TargetOp[T]) EncodeMsgpack(enc *msgpack.Encoder) error {
	return encodeArray(enc, a.Target)
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

// Decode takes raw, the argument's array, apart into a.
func (a *WrapOp[V]) Decode(raw []byte) error {
	var buf [4][]byte
	p, err := splitOp(raw, buf[:0], 3)
	if err != nil {
		return err
	}
	if a.Function, err = codec.DecodeString(p[0]); err != nil {
		return err
	}
	if a.ArgType, err = codec.DecodeString(p[1]); err != nil {
		return err
	}
	return decodeValue(&a.Arg, p[2])
}

// Decode takes raw, the argument's array, apart into a. Nil arguments
// decode as nil Args; more than [MaxArgs] are refused before they are
// split.
func (a *CallOp[T, V]) Decode(raw []byte) error {
	var buf [4][]byte
	p, err := splitOp(raw, buf[:0], 4)
	if err != nil {
		return err
	}
	if err := decodeValue(&a.Target, p[0]); err != nil {
		return err
	}
	if a.Method, err = codec.DecodeString(p[1]); err != nil {
		return err
	}
	if a.WantRef, err = decodeBool(p[2]); err != nil {
		return err
	}
	a.Args = nil
	if len(p[3]) == 1 && p[3][0] == 0xc0 {
		return nil
	}
	if n, ok := arrayLen(p[3]); !ok || n > MaxArgs {
		return fmt.Errorf("want an array of at most %d arguments", MaxArgs)
	}
	var argBuf [4][]byte
	args, err := codec.SplitArray(p[3], argBuf[:0])
	if err != nil {
		return err
	}
	a.Args = make([]V, len(args)) // none: empty, not nil, as it was sent
	for i, r := range args {
		if err := decodeValue(&a.Args[i], r); err != nil {
			return err
		}
	}
	return nil
}

// Decode takes raw, the argument's array, apart into a.
func (a *MemberOp[T, V]) Decode(raw []byte) error {
	var buf [4][]byte
	p, err := splitOp(raw, buf[:0], 3)
	if err != nil {
		return err
	}
	if err := decodeValue(&a.Target, p[0]); err != nil {
		return err
	}
	if err := decodeValue(&a.Key, p[1]); err != nil {
		return err
	}
	a.WantRef, err = decodeBool(p[2])
	return err
}

// Decode takes raw, the argument's array, apart into a.
func (a *SetOp[T, V]) Decode(raw []byte) error {
	var buf [4][]byte
	p, err := splitOp(raw, buf[:0], 3)
	if err != nil {
		return err
	}
	if err := decodeValue(&a.Target, p[0]); err != nil {
		return err
	}
	if err := decodeValue(&a.Key, p[1]); err != nil {
		return err
	}
	return decodeValue(&a.Value, p[2])
}

// Decode takes raw, the argument's array, apart into a.
func (a *TargetOp[T]) Decode(raw []byte) error {
	var buf [4][]byte
	p, err := splitOp(raw, buf[:0], 1)
	if err != nil {
		return err
	}
	return decodeValue(&a.Target, p[0])
}

// splitOp splits raw, an array of n values, into buf.
func splitOp(raw []byte, buf [][]byte, n int) ([][]byte, error) {
	p, err := codec.SplitArray(raw, buf)
	if err == nil && len(p) != n {
		err = fmt.Errorf("want an array of %d values, got %d", n, len(p))
	}
	return p, err
}

// decodeValue decodes raw, one value of an operation's array, into dst: a
// msgpack.RawMessage keeps raw itself, aliasing the message.
func decodeValue[T any](dst *T, raw []byte) error {
	if p, ok := any(dst).(*msgpack.RawMessage); ok {
		*p = raw
		return nil
	}
	return codec.Unmarshal(raw, dst)
}

func decodeBool(raw []byte) (bool, error) {
	if len(raw) == 1 && (raw[0] == 0xc2 || raw[0] == 0xc3) {
		return raw[0] == 0xc3, nil
	}
	return false, fmt.Errorf("want a bool")
}

// arrayLen reads the length of the msgpack array at the start of raw.
func arrayLen(raw []byte) (int, bool) {
	switch {
	case len(raw) >= 1 && raw[0]&0xf0 == 0x90:
		return int(raw[0] & 0x0f), true
	case len(raw) >= 3 && raw[0] == 0xdc:
		return int(raw[1])<<8 | int(raw[2]), true
	case len(raw) >= 5 && raw[0] == 0xdd:
		return int(uint32(raw[1])<<24 | uint32(raw[2])<<16 | uint32(raw[3])<<8 | uint32(raw[4])), true
	}
	return 0, false
}
