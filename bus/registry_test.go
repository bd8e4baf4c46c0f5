package bus_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/registry"
	"github.com/processional/processional/internal/wire"
)

type point struct {
	X, Y  int
	Label string `msgpack:"label"`
}

type shape struct {
	Name   string
	Points []point
	Tags   map[string]int
	Next   *shape
	Blob   []byte
	Ratio  float64
	Nested struct{ A, B bool }
}

var errRegistryTest = bus.RegisterError("bus_test.errRegistryTest", errors.New("bus_test: registry test error"))

type ctxKey struct{}

// Functions registered once, at package level, as real code does: a test
// binary run with -count=N must not register them again.
var (
	regSum = bus.Register("bus_test.sum", func(ctx context.Context, xs []int) (int, error) {
		n := 0
		for _, x := range xs {
			n += x
		}
		return n, nil
	})
	regEcho = bus.Register("bus_test.echo", func(ctx context.Context, s string) (string, error) {
		return s, nil
	})
	regShape = bus.Register("bus_test.shape", func(ctx context.Context, s shape) (shape, error) {
		s.Name += "!"
		return s, nil
	})
	regPtr = bus.Register("bus_test.ptr", func(ctx context.Context, p *point) (*point, error) {
		if p == nil {
			return nil, nil
		}
		return &point{X: p.Y, Y: p.X, Label: p.Label}, nil
	})
	regAny = bus.Register("bus_test.any", func(ctx context.Context, v any) (any, error) {
		return v, nil
	})
	_ = bus.Register("bus_test.empty", func(ctx context.Context, _ struct{}) (struct{}, error) {
		return struct{}{}, nil
	})
	regFail = bus.Register("bus_test.fail", func(ctx context.Context, n int) (int, error) {
		return 0, fmt.Errorf("item %d: %w", n, errRegistryTest)
	})
	regCtx = bus.Register("bus_test.ctx", func(ctx context.Context, _ struct{}) (string, error) {
		v, _ := ctx.Value(ctxKey{}).(string)
		return v, nil
	})
	regPanic = bus.Register("bus_test.panic", func(ctx context.Context, msg string) (int, error) {
		panic(msg)
	})
	// regDefault is registered under the Go qualified name of double.
	regDefault = bus.Register("", double)
)

func double(ctx context.Context, x int) (int, error) { return 2 * x, nil }

// TestRegisterRoundTrip encodes an argument, calls the function through its
// untyped Function (as a worker does) and checks the result.
func TestRegisterRoundTrip(t *testing.T) {
	s := shape{
		Name:   "tri",
		Points: []point{{1, 2, "a"}, {3, 4, "b"}},
		Tags:   map[string]int{"x": 1},
		Next:   &shape{Name: "inner"},
		Blob:   []byte{0, 1, 2, 255},
		Ratio:  0.5,
	}
	s.Nested.B = true
	want := s
	want.Name = "tri!"
	for _, tc := range []struct {
		name string
		arg  any
		want any
	}{
		{"bus_test.sum", []int{1, 2, 3, 4}, 10},
		{"bus_test.sum", []int(nil), 0},
		{"bus_test.echo", "héllo", "héllo"},
		{"bus_test.echo", "", ""},
		{"bus_test.shape", s, want},
		{"bus_test.ptr", &point{1, 2, "p"}, &point{2, 1, "p"}},
		{"bus_test.ptr", (*point)(nil), (*point)(nil)},
		{"bus_test.any", "str", "str"},
		{"bus_test.any", nil, nil},
		{"bus_test.empty", struct{}{}, struct{}{}},
		{"github.com/processional/processional/bus_test.double", 21, 42},
	} {
		t.Run(fmt.Sprintf("%s(%v)", tc.name, tc.arg), func(t *testing.T) {
			f, ok := registry.Lookup(tc.name)
			if !ok {
				t.Fatalf("Lookup(%q) found nothing", tc.name)
			}
			if f.Name() != tc.name {
				t.Errorf("Name() = %q, want %q", f.Name(), tc.name)
			}
			data, err := codec.Marshal(tc.arg)
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.Invoke(context.Background(), data, fmt.Sprintf("%T", tc.arg))
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if !reflect.DeepEqual(res, tc.want) {
				t.Fatalf("Invoke = %#v, want %#v", res, tc.want)
			}
			// The result travels too: encode it and decode it into the
			// result type, as a master does.
			out, err := codec.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(f.ResultType())
			if err := codec.Unmarshal(out, back.Interface()); err != nil {
				t.Fatal(err)
			}
			if tc.want != nil && !reflect.DeepEqual(back.Elem().Interface(), tc.want) {
				t.Fatalf("result after the codec = %#v, want %#v", back.Elem().Interface(), tc.want)
			}
		})
	}
}

func TestFuncAccessors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fn       interface{ Name() string }
		regName  string
		arg, res reflect.Type
		argName  string
	}{
		{"sum", regSum, "bus_test.sum", reflect.TypeFor[[]int](), reflect.TypeFor[int](), "[]int"},
		{"shape", regShape, "bus_test.shape", reflect.TypeFor[shape](), reflect.TypeFor[shape](), "bus_test.shape"},
		{"ptr", regPtr, "bus_test.ptr", reflect.TypeFor[*point](), reflect.TypeFor[*point](), "*bus_test.point"},
		{"any", regAny, "bus_test.any", reflect.TypeFor[any](), reflect.TypeFor[any](), "interface {}"},
		{"default name", regDefault, "github.com/processional/processional/bus_test.double", reflect.TypeFor[int](), reflect.TypeFor[int](), "int"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := desc(t, tc.fn.Name())
			if f.Name() != tc.regName {
				t.Errorf("Name() = %q, want %q", f.Name(), tc.regName)
			}
			if f.ArgType() != tc.arg || f.ResultType() != tc.res {
				t.Errorf("types = %v, %v, want %v, %v", f.ArgType(), f.ResultType(), tc.arg, tc.res)
			}
			if got, _ := registry.Lookup(tc.regName); got != f {
				t.Errorf("Lookup(%q) = %p, want the Func's own %p", tc.regName, got, f)
			}
			if f.ArgTypeName() != tc.argName {
				t.Errorf("ArgTypeName() = %q, want %q", f.ArgTypeName(), tc.argName)
			}
		})
	}
}

func TestFuncCall(t *testing.T) {
	ctx := context.Background()
	if n, err := regSum.Call(ctx, []int{1, 2}); n != 3 || err != nil {
		t.Errorf("sum.Call = %d, %v", n, err)
	}
	if n, err := regDefault.Call(ctx, 4); n != 8 || err != nil {
		t.Errorf("double.Call = %d, %v", n, err)
	}
	ctx = context.WithValue(ctx, ctxKey{}, "seen")
	if s, err := regCtx.Call(ctx, struct{}{}); s != "seen" || err != nil {
		t.Errorf("ctx.Call = %q, %v: the context did not reach the function", s, err)
	}
	// Call does not recover: the caller owns panics.
	if msg, ok := panicValue(func() { regPanic.Call(ctx, "boom") }); !ok || msg != "boom" {
		t.Errorf("panic.Call panicked %v with %q, want a panic with \"boom\"", ok, msg)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := codec.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Types that cannot travel, nested at various depths.
type (
	withFunc       struct{ F func() }
	withChanInside struct {
		Name  string
		Inner struct{ C chan int }
	}
	withPtrToFunc struct{ P *withFunc }
	withUnsafe    struct {
		N int
		U unsafe.Pointer
	}
	withSliceMap struct{ M map[string][]chan bool }
)

// Types that can travel although they hold a func or chan somewhere.
type (
	hiddenFunc struct {
		//lint:ignore U1000 an unexported func field, which the codec skips: the point of the type
		f func()
		X int
	}
	skippedFunc struct {
		F func() `msgpack:"-"`
		X int
	}
	list struct {
		Val  int
		Next *list
	}
	tree struct {
		Kids map[string]tree
		Up   []*tree
	}
	// selfEncoded carries a chan but encodes itself.
	selfEncoded struct{ C chan int }
	// badCodec encodes itself into something it cannot decode.
	badCodec struct{}
	// ptrEncoded encodes itself, but only through a pointer.
	ptrEncoded struct{ N int }
)

func (p *ptrEncoded) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeInt(int64(p.N)) }
func (p *ptrEncoded) DecodeMsgpack(dec *msgpack.Decoder) (err error) {
	p.N, err = dec.DecodeInt()
	return err
}

func (s selfEncoded) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeInt(int64(cap(s.C))) }
func (s *selfEncoded) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeInt()
	s.C = make(chan int, n)
	return err
}
func (badCodec) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeString("x") }
func (*badCodec) DecodeMsgpack(dec *msgpack.Decoder) error {
	return errors.New("badCodec cannot decode")
}

func TestRegisterPanicsOnTypes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		register func(name string)
		wantSubs []string
	}{
		{"arg func", func(n string) {
			bus.Register(n, func(context.Context, func()) (int, error) { return 0, nil })
		}, []string{"argument type", "func()", "is a func"}},
		{"arg func with signature", func(n string) {
			bus.Register(n, func(context.Context, func(int) string) (int, error) { return 0, nil })
		}, []string{"argument type", "func(int) string", "is a func"}},
		{"arg chan", func(n string) {
			bus.Register(n, func(context.Context, chan int) (int, error) { return 0, nil })
		}, []string{"argument type", "chan int", "is a chan"}},
		{"arg receive chan", func(n string) {
			bus.Register(n, func(context.Context, <-chan string) (int, error) { return 0, nil })
		}, []string{"argument type", "<-chan string", "is a chan"}},
		{"arg unsafe.Pointer", func(n string) {
			bus.Register(n, func(context.Context, unsafe.Pointer) (int, error) { return 0, nil })
		}, []string{"argument type", "unsafe.Pointer", "cannot be serialized"}},
		{"result func", func(n string) {
			bus.Register(n, func(context.Context, int) (func() error, error) { return nil, nil })
		}, []string{"result type", "func() error", "is a func"}},
		{"result chan", func(n string) {
			bus.Register(n, func(context.Context, int) (chan struct{}, error) { return nil, nil })
		}, []string{"result type", "chan struct {}", "is a chan"}},
		{"result unsafe.Pointer", func(n string) {
			bus.Register(n, func(context.Context, int) (unsafe.Pointer, error) { return nil, nil })
		}, []string{"result type", "unsafe.Pointer", "cannot be serialized"}},
		{"struct field", func(n string) {
			bus.Register(n, func(context.Context, withFunc) (int, error) { return 0, nil })
		}, []string{"argument type", "bus_test.withFunc.F (func())", "is a func"}},
		{"nested struct field", func(n string) {
			bus.Register(n, func(context.Context, int) (withChanInside, error) { return withChanInside{}, nil })
		}, []string{"result type", "bus_test.withChanInside.Inner (struct { C chan int }).C (chan int)", "is a chan"}},
		{"pointer to struct with func", func(n string) {
			bus.Register(n, func(context.Context, *withPtrToFunc) (int, error) { return 0, nil })
		}, []string{"argument type", "*bus_test.withPtrToFunc element.P (*bus_test.withFunc)", ".F (func())"}},
		{"struct with unsafe.Pointer", func(n string) {
			bus.Register(n, func(context.Context, int) (withUnsafe, error) { return withUnsafe{}, nil })
		}, []string{"result type", "bus_test.withUnsafe.U (unsafe.Pointer)"}},
		{"slice", func(n string) {
			bus.Register(n, func(context.Context, []chan int) (int, error) { return 0, nil })
		}, []string{"argument type", "[]chan int element", "is a chan"}},
		{"array", func(n string) {
			bus.Register(n, func(context.Context, [2]func()) (int, error) { return 0, nil })
		}, []string{"argument type", "[2]func() element", "is a func"}},
		{"pointer", func(n string) {
			bus.Register(n, func(context.Context, *func()) (int, error) { return 0, nil })
		}, []string{"argument type", "*func() element", "is a func"}},
		{"map value", func(n string) {
			bus.Register(n, func(context.Context, map[string]func()) (int, error) { return 0, nil })
		}, []string{"argument type", "map[string]func() value", "is a func"}},
		{"map key", func(n string) {
			bus.Register(n, func(context.Context, int) (map[chan int]bool, error) { return nil, nil })
		}, []string{"result type", "map[chan int]bool key", "is a chan"}},
		{"map of slices in struct", func(n string) {
			bus.Register(n, func(context.Context, []withSliceMap) (int, error) { return 0, nil })
		}, []string{"argument type", "[]bus_test.withSliceMap element.M (map[string][]chan bool) value element", "is a chan"}},
		{"slice of structs in map", func(n string) {
			bus.Register(n, func(context.Context, map[string][]withFunc) (int, error) { return 0, nil })
		}, []string{"argument type", "map[string][]bus_test.withFunc value element.F (func())"}},
		{"codec cannot encode", func(n string) {
			bus.Register(n, func(context.Context, complex128) (int, error) { return 0, nil })
		}, []string{"argument type", "complex128"}},
		{"codec cannot round trip", func(n string) {
			bus.Register(n, func(context.Context, int) (badCodec, error) { return badCodec{}, nil })
		}, []string{"result type", "bus_test.badCodec", "codec round trip", "badCodec cannot decode"}},
		// A value whose EncodeMsgpack has a pointer receiver cannot be
		// encoded, and every call would fail: refuse it at registration.
		{"pointer-receiver encoder", func(n string) {
			bus.Register(n, func(context.Context, ptrEncoded) (int, error) { return 0, nil })
		}, []string{"argument type", "bus_test.ptrEncoded", "non-addressable"}},
		{"pointer-receiver encoder in a struct", func(n string) {
			bus.Register(n, func(context.Context, int) (struct{ P ptrEncoded }, error) { return struct{ P ptrEncoded }{}, nil })
		}, []string{"result type", "bus_test.ptrEncoded", "non-addressable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "bus_test.bad." + strings.ReplaceAll(tc.name, " ", "_")
			msg, ok := panicValue(func() { tc.register(name) })
			if !ok {
				t.Fatalf("Register(%q) did not panic", name)
			}
			wantSubstrings(t, "panic", msg, append([]string{fmt.Sprintf("bus: Register(%q)", name), "cannot travel"}, tc.wantSubs...)...)
			if _, found := registry.Lookup(name); found {
				t.Errorf("Register(%q) panicked but registered the function", name)
			}
		})
	}
}

func TestRegisterAcceptsTypesThatTravel(t *testing.T) {
	for _, tc := range []struct {
		name     string
		register func(name string) *registry.Function
	}{
		{"unexported func field", func(n string) *registry.Function {
			return desc(nil, bus.Register(n, func(context.Context, hiddenFunc) (hiddenFunc, error) { return hiddenFunc{}, nil }).Name())
		}},
		{"skipped func field", func(n string) *registry.Function {
			return desc(nil, bus.Register(n, func(context.Context, skippedFunc) (int, error) { return 0, nil }).Name())
		}},
		{"recursive list", func(n string) *registry.Function {
			return desc(nil, bus.Register(n, func(context.Context, *list) (list, error) { return list{}, nil }).Name())
		}},
		{"recursive tree", func(n string) *registry.Function {
			return desc(nil, bus.Register(n, func(context.Context, tree) ([]tree, error) { return nil, nil }).Name())
		}},
		{"self-encoding type with a chan", func(n string) *registry.Function {
			return desc(nil, bus.Register(n, func(context.Context, selfEncoded) (*selfEncoded, error) { return nil, nil }).Name())
		}},
		{"interfaces", func(n string) *registry.Function {
			return desc(nil, bus.Register(n, func(context.Context, any) (error, error) { return nil, nil }).Name())
		}},
		{"pointer to a pointer-receiver encoder", func(n string) *registry.Function {
			return desc(nil, bus.Register(n, func(context.Context, *ptrEncoded) (*ptrEncoded, error) { return nil, nil }).Name())
		}},
		{"time and raw", func(n string) *registry.Function {
			return desc(nil, bus.Register(n, func(context.Context, time.Time) (msgpack.RawMessage, error) { return nil, nil }).Name())
		}},
		{"empty struct", func(n string) *registry.Function {
			return desc(nil, bus.Register(n, func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil }).Name())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each run registers under a fresh name: -count=N runs this again.
			name := "bus_test.ok." + wire.NewID("r")
			var f *registry.Function
			if msg, ok := panicValue(func() { f = tc.register(name) }); ok {
				t.Fatalf("Register panicked: %s", msg)
			}
			if got, ok := registry.Lookup(name); !ok || got != f {
				t.Fatalf("Lookup(%q) = %v, %v, want the registered function", name, got, ok)
			}
		})
	}
}

func TestRegisterPanicsOnNames(t *testing.T) {
	fn := func(context.Context, int) (int, error) { return 0, nil }
	for _, tc := range []struct {
		name    string
		regName string
		want    string
	}{
		{"space", "bus_test.has space", "white space"},
		{"tab", "bus_test.has\ttab", "white space"},
		{"newline", "bus_test.has\nnewline", "white space"},
		{"star", "bus_test.*", "'*'"},
		{"greater than", "bus_test.>", "'>'"},
		{"non-ASCII", "bus_test.héllo", "printable ASCII"},
		{"control character", "bus_test.\x00", "printable ASCII"},
		{"DEL", "bus_test.\x7f", "printable ASCII"},
		{"too long", "bus_test." + repeat('x', 200), "longer than 200 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, ok := panicValue(func() { bus.Register(tc.regName, fn) })
			if !ok {
				t.Fatalf("Register(%q) did not panic", tc.regName)
			}
			wantSubstrings(t, "panic", msg, fmt.Sprintf("bus: Register(%q)", tc.regName), tc.want)
			if _, found := registry.Lookup(tc.regName); found {
				t.Errorf("Register(%q) panicked but registered the function", tc.regName)
			}
		})
	}
	// 200 bytes is still fine.
	ok200 := "bus_test." + wire.NewID("n") + "."
	ok200 += repeat('y', 200-len(ok200))
	if msg, ok := panicValue(func() { bus.Register(ok200, fn) }); ok {
		t.Errorf("Register of a 200-byte name panicked: %s", msg)
	}
}

func repeat(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func TestRegisterPanicsOnDuplicate(t *testing.T) {
	name := "bus_test.dup." + wire.NewID("d")
	bus.Register(name, func(context.Context, int) (int, error) { return 1, nil })
	first, _ := registry.Lookup(name)
	for _, tc := range []struct {
		name     string
		register func()
	}{
		{"same signature", func() { bus.Register(name, func(context.Context, int) (int, error) { return 2, nil }) }},
		{"other signature", func() { bus.Register(name, func(context.Context, string) (bool, error) { return true, nil }) }},
		{"package-level name", func() { bus.Register("bus_test.sum", func(context.Context, []int) (int, error) { return 0, nil }) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, ok := panicValue(tc.register)
			if !ok {
				t.Fatal("a second Register under a taken name did not panic")
			}
			wantSubstrings(t, "panic", msg, "bus: Register(", "registered twice")
		})
	}
	if got, _ := registry.Lookup(name); got != first {
		t.Error("a refused duplicate replaced the first registration")
	}
}

func TestRegisterPanicsOnNilFunc(t *testing.T) {
	for _, name := range []string{"bus_test.nil", ""} {
		msg, ok := panicValue(func() { bus.Register[int, int](name, nil) })
		if !ok {
			t.Fatalf("Register(%q, nil) did not panic", name)
		}
		wantSubstrings(t, "panic", msg, fmt.Sprintf("bus: Register(%q)", name), "nil function")
	}
}

func TestRegisterDefaultName(t *testing.T) {
	const want = "github.com/processional/processional/bus_test.double"
	if regDefault.Name() != want {
		t.Fatalf("default name = %q, want %q", regDefault.Name(), want)
	}
	// The same function under its default name again is a duplicate.
	msg, ok := panicValue(func() { bus.Register("", double) })
	if !ok {
		t.Fatal("registering double twice under its default name did not panic")
	}
	wantSubstrings(t, "panic", msg, want, "registered twice")
}

func TestLookupAndFunctions(t *testing.T) {
	if f, ok := registry.Lookup("bus_test.no such function"); ok || f != nil {
		t.Errorf("Lookup of an unknown name = %v, %v", f, ok)
	}
	fs := registry.Functions()
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name()
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("Functions() not sorted by name: %q", names)
	}
	for _, want := range []string{"bus_test.sum", "bus_test.echo", "bus_test.shape", regDefault.Name()} {
		i := sort.SearchStrings(names, want)
		if i == len(names) || names[i] != want {
			t.Errorf("Functions() lacks %q", want)
		}
	}
}

// TestRegisterConcurrent registers and looks up from many goroutines; run
// it with -race.
func TestRegisterConcurrent(t *testing.T) {
	prefix := "bus_test.conc." + wire.NewID("c") + "."
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprint(prefix, i)
			f := bus.Register(name, func(_ context.Context, x int) (int, error) { return x + i, nil })
			if got, ok := registry.Lookup(name); !ok || got.Name() != f.Name() {
				t.Errorf("Lookup(%q) after Register = %v, %v", name, got, ok)
			}
			registry.Functions()
		}()
	}
	wg.Wait()
	for i := range 16 {
		f, ok := registry.Lookup(fmt.Sprint(prefix, i))
		if !ok {
			t.Fatalf("function %d missing", i)
		}
		res, err := f.Invoke(context.Background(), mustMarshal(t, 100), "int")
		if err != nil || res != 100+i {
			t.Errorf("function %d = %v, %v", i, res, err)
		}
	}
}

// desc is the registry's untyped description of the function registered
// under name, which a worker calls.
func desc(t testing.TB, name string) *registry.Function {
	f, ok := registry.Lookup(name)
	if !ok {
		if t == nil {
			panic("no function " + name)
		}
		t.Fatalf("no function %q registered", name)
	}
	return f
}
