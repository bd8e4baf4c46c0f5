package wire_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
)

// target stands for a master's Ref as the target of an operation: it
// appends itself (codec.Appender), and notes the contexts it was appended
// with. It is a pointer, as a master's is one pointer: boxed with no
// allocation.
type target struct {
	ref  wire.ObjectRef
	seen []any
}

func (t *target) AppendMsgpack(dst []byte, ctx any) ([]byte, error) {
	t.seen = append(t.seen, ctx)
	return wire.AppendRef(dst, t.ref), nil
}

func (t *target) EncodeMsgpack(enc *msgpack.Encoder) error {
	b, err := t.AppendMsgpack(nil, codec.EncoderContext(enc))
	if err != nil {
		return err
	}
	_, err = enc.Writer().Write(b)
	return err
}

// The arguments as each side holds them.
type (
	raw        = msgpack.RawMessage
	sentCall   = wire.CallOp[*target, any]
	sentMember = wire.MemberOp[*target, any]
	sentSet    = wire.SetOp[*target, any]
	rawCall    = wire.CallOp[raw, raw]
	rawMember  = wire.MemberOp[raw, raw]
	rawSet     = wire.SetOp[raw, raw]
	rawWrap    = wire.WrapOp[raw]
	rawTarget  = wire.TargetOp[raw]
)

var opRef = wire.ObjectRef{Worker: "w-1", ID: 7, Type: "*main.Counter", Secret: 99, Holder: "m-1"}

// array is the msgpack array of the values, each encoded on its own: the
// layout every operation's argument has.
func array(vs ...[]byte) []byte {
	out := codec.AppendArrayHeader(nil, len(vs))
	for _, v := range vs {
		out = append(out, v...)
	}
	return out
}

// encode encodes v with a master's codec (codec.AppendValueWith, which takes
// a codec.Appender's own path) and with msgpack's encoder, which must agree.
func encode(t *testing.T, v any) []byte {
	t.Helper()
	viaCodec, err := codec.AppendValueWith(nil, v, "ctx")
	if err != nil {
		t.Fatalf("encode %#v: %v", v, err)
	}
	viaMsgpack, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatalf("msgpack.Marshal %#v: %v", v, err)
	}
	if !bytes.Equal(viaCodec, viaMsgpack) {
		t.Fatalf("%T: codec writes % x, msgpack % x", v, viaCodec, viaMsgpack)
	}
	return viaCodec
}

// TestObjOpsWireBytes pins each argument's bytes as a master sends them:
// the struct's fields, in order, in an array.
func TestObjOpsWireBytes(t *testing.T) {
	ref := wire.AppendRef(nil, opRef)
	tg := &target{ref: opRef}
	for _, tc := range []struct {
		name string
		arg  any
		want []byte
	}{
		{"call", &sentCall{Target: tg, Method: "Add", Args: []any{1, "x"}},
			array(ref, mustMarshal(t, "Add"), []byte{0xc2}, array([]byte{0x01}, mustMarshal(t, "x")))},
		{"call for a reference, no arguments", &sentCall{Target: tg, Method: "Child", WantRef: true, Args: []any{}},
			array(ref, mustMarshal(t, "Child"), []byte{0xc3}, []byte{0x90})},
		{"call, nil arguments", &sentCall{Target: tg, Method: "Get"},
			array(ref, mustMarshal(t, "Get"), []byte{0xc2}, []byte{0xc0})},
		{"get", &sentMember{Target: tg, Key: "N"},
			array(ref, mustMarshal(t, "N"), []byte{0xc2})},
		{"index for a reference", &sentMember{Target: tg, Key: 3, WantRef: true},
			array(ref, []byte{0x03}, []byte{0xc3})},
		{"set", &sentSet{Target: tg, Key: "N", Value: []int{1, 2}},
			array(ref, mustMarshal(t, "N"), mustMarshal(t, []int{1, 2}))},
		{"unwrap", wire.TargetOp[*target]{Target: tg}, array(ref)},
		{"acquire", wire.TargetOp[wire.ObjectRef]{Target: opRef}, array(ref)},
		{"wrap", &wire.WrapOp[any]{Function: "test.new", ArgType: "int", Arg: 4},
			array(mustMarshal(t, "test.new"), mustMarshal(t, "int"), []byte{0x04})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := encode(t, tc.arg); !bytes.Equal(got, tc.want) {
				t.Fatalf("% x, want % x", got, tc.want)
			}
		})
	}
}

// TestObjOpsRoundTrip: what a master encodes, a worker decodes into raw
// values that decode back to the master's; what a worker's tests encode
// from raw values decodes to the same raw values.
func TestObjOpsRoundTrip(t *testing.T) {
	ref := raw(wire.AppendRef(nil, opRef))
	tg := &target{ref: opRef}
	for _, tc := range []struct {
		name string
		sent any            // as a master encodes it
		raw  any            // as a worker decodes it (a pointer to a zero value)
		want any            // what the worker decodes
		back func(any) bool // the raw values decode back to the master's
	}{
		{"call", &sentCall{Target: tg, Method: "Add", WantRef: true, Args: []any{1, "x", nil}}, &rawCall{},
			&rawCall{Target: ref, Method: "Add", WantRef: true, Args: []raw{{0x01}, mustMarshal(t, "x"), {0xc0}}}, nil},
		{"call, no arguments", &sentCall{Target: tg, Method: "Get", Args: []any{}}, &rawCall{},
			&rawCall{Target: ref, Method: "Get", Args: []raw{}}, nil},
		{"call, nil arguments", &sentCall{Target: tg, Method: "Get"}, &rawCall{},
			&rawCall{Target: ref, Method: "Get"}, nil},
		{"member", &sentMember{Target: tg, Key: map[string]int{"a": 1}, WantRef: true}, &rawMember{},
			&rawMember{Target: ref, Key: mustMarshal(t, map[string]int{"a": 1}), WantRef: true}, nil},
		{"set", &sentSet{Target: tg, Key: 2, Value: "v"}, &rawSet{},
			&rawSet{Target: ref, Key: raw{0x02}, Value: mustMarshal(t, "v")}, nil},
		{"wrap", &wire.WrapOp[any]{Function: "test.new", ArgType: "[]int", Arg: []int{1}}, &rawWrap{},
			&rawWrap{Function: "test.new", ArgType: "[]int", Arg: mustMarshal(t, []int{1})}, nil},
		{"target", wire.TargetOp[*target]{Target: tg}, &rawTarget{}, &rawTarget{Target: ref}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := encode(t, tc.sent)
			dec := tc.raw.(interface{ Decode([]byte) error })
			if err := dec.Decode(data); err != nil {
				t.Fatalf("decode % x: %v", data, err)
			}
			if !reflect.DeepEqual(tc.raw, tc.want) {
				t.Fatalf("decoded %+v, want %+v", tc.raw, tc.want)
			}
			// The worker's side encodes its raw values back to the same
			// bytes.
			if again := encode(t, reflect.ValueOf(tc.raw).Elem().Interface()); !bytes.Equal(again, data) {
				t.Fatalf("the worker's side encodes % x, the master's % x", again, data)
			}
		})
	}
	// The target appends itself with the call's codec.
	seen := &target{ref: opRef}
	if _, err := codec.AppendValueWith(nil, &sentCall{Target: seen, Args: []any{}}, "the call's codec"); err != nil {
		t.Fatal(err)
	}
	if len(seen.seen) != 1 || seen.seen[0] != "the call's codec" {
		t.Fatalf("the target was appended with %v, want the call's codec once", seen.seen)
	}
	// The raw values alias the message.
	data := encode(t, &sentCall{Target: tg, Method: "Add", Args: []any{1}})
	var c rawCall
	if err := c.Decode(data); err != nil {
		t.Fatal(err)
	}
	data[1+len(ref)+4+1+1] = 0x02
	if c.Args[0][0] != 0x02 {
		t.Fatalf("the argument % x is a copy, want it to alias the message", c.Args[0])
	}
}

// TestObjOpsDecodeErrors: an argument no master sends is refused, saying
// what was wrong, and never panics.
func TestObjOpsDecodeErrors(t *testing.T) {
	ref := wire.AppendRef(nil, opRef)
	str := func(s string) []byte { return mustMarshal(t, s) }
	many := codec.AppendArrayHeader(nil, wire.MaxArgs+1)
	for range wire.MaxArgs + 1 {
		many = append(many, 0x01)
	}
	for _, tc := range []struct {
		name string
		dec  interface{ Decode([]byte) error }
		data []byte
		want string
	}{
		{"nothing", &rawCall{}, nil, "want an array"},
		{"not an array", &rawCall{}, str("x"), "want an array"},
		{"a map", &rawMember{}, mustMarshal(t, map[string]int{"a": 1}), "want an array"},
		{"cut short", &rawCall{}, []byte{0x94, 0x01}, "announced"},
		{"call of 3", &rawCall{}, array(ref, str("m"), []byte{0xc2}), "want an array of 4 values, got 3"},
		{"member of 4", &rawMember{}, array(ref, str("k"), []byte{0xc2}, []byte{0xc0}), "want an array of 3 values, got 4"},
		{"set of 2", &rawSet{}, array(ref, str("k")), "want an array of 3 values, got 2"},
		{"target of 0", &rawTarget{}, array(), "want an array of 1 values, got 0"},
		{"wrap of 1", &rawWrap{}, array(str("f")), "want an array of 3 values, got 1"},
		{"method not a string", &rawCall{}, array(ref, []byte{0x01}, []byte{0xc2}, []byte{0x90}), "msgpack"},
		{"want-ref not a bool", &rawCall{}, array(ref, str("m"), []byte{0x01}, []byte{0x90}), "want a bool"},
		{"member want-ref not a bool", &rawMember{}, array(ref, str("k"), str("yes")), "want a bool"},
		{"arguments not an array", &rawCall{}, array(ref, str("m"), []byte{0xc2}, str("x")), "at most 1024 arguments"},
		{"too many arguments", &rawCall{}, array(ref, str("m"), []byte{0xc2}, many), "at most 1024 arguments"},
		{"arguments cut short", &rawCall{}, array(ref, str("m"), []byte{0xc2}, []byte{0x92, 0xc1}), "msgpack"},
		{"function not a string", &rawWrap{}, array([]byte{0xc0}, str("int"), []byte{0x01}), "msgpack"},
		{"argument type not a string", &rawWrap{}, array(str("f"), []byte{0x01}, []byte{0x01}), "msgpack"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.dec.Decode(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode of % x: %v, want an error saying %q", tc.data, err, tc.want)
			}
		})
	}
}

func TestIsOp(t *testing.T) {
	for _, name := range []string{wire.OpWrap, wire.OpCall, wire.OpGet, wire.OpSet, wire.OpIndex, wire.OpSetIndex, wire.OpUnwrap, wire.OpAcquire, wire.OpRelease} {
		if !wire.IsOp(name) {
			t.Errorf("IsOp(%q) = false", name)
		}
	}
	for _, name := range []string{"", "sum", "a@b"} {
		if wire.IsOp(name) {
			t.Errorf("IsOp(%q) = true", name)
		}
	}
}

// FuzzObjOps decodes any bytes as each argument: no panic, and what
// decodes encodes back to bytes that decode the same.
func FuzzObjOps(f *testing.F) {
	ref := wire.AppendRef(nil, opRef)
	for _, v := range []any{
		&sentCall{Target: &target{ref: opRef}, Method: "Add", Args: []any{1, "x", []int{2}}},
		&sentMember{Target: &target{ref: opRef}, Key: "N"},
		&sentSet{Target: &target{ref: opRef}, Key: 1, Value: map[string]int{"a": 1}},
		&wire.WrapOp[any]{Function: "f", ArgType: "int", Arg: 1},
	} {
		data, err := codec.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(array(ref))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, newArg := range []func() interface{ Decode([]byte) error }{
			func() interface{ Decode([]byte) error } { return &rawCall{} },
			func() interface{ Decode([]byte) error } { return &rawMember{} },
			func() interface{ Decode([]byte) error } { return &rawSet{} },
			func() interface{ Decode([]byte) error } { return &rawWrap{} },
			func() interface{ Decode([]byte) error } { return &rawTarget{} },
		} {
			a := newArg()
			if a.Decode(data) != nil {
				continue
			}
			again, err := codec.Marshal(reflect.ValueOf(a).Elem().Interface())
			if err != nil {
				t.Fatalf("%T %+v decoded from % x does not encode: %v", a, a, data, err)
			}
			b := newArg()
			if err := b.Decode(again); err != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("%T: % x decodes to %+v, encodes to % x, which decodes to %+v, %v", a, data, a, again, b, err)
			}
		}
	})
}
