package codec

import (
	"encoding"
	"fmt"
	"reflect"
	"sync"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/internal/registry"
)

// Named slice types of numbers or bools (type Vec []float64, []Celsius)
// and arrays of them ([4]float64, [1000]int32) have no codec of their own
// in msgpack, which registers codecs by exact type: they would go element
// by element through reflection. registerBulkFor gives them the bulk
// codec of their element kind, both forms, on their memory as it is; it
// is called for every slice and array type in the type of a value given
// to AppendValueWith or UnmarshalWith (see prepareBulk), which every
// argument and result type of a registered function goes through at init
// (checkTravel). A type met nowhere else (inside an interface{} only)
// keeps msgpack's own codec, which writes the same standard form but
// cannot read the packed one.
//
// An array decodes from an array or packed slice of exactly its length,
// and refuses any other length naming both (msgpack v5 refuses a longer
// one and fills a shorter one's first elements); a msgpack nil leaves it
// as it was, as msgpack v5 does.

var bulkRegistered sync.Map // reflect.Type → true, once registered or refused

var selfCoders = []reflect.Type{
	reflect.TypeFor[msgpack.CustomEncoder](), reflect.TypeFor[msgpack.CustomDecoder](),
	reflect.TypeFor[msgpack.Marshaler](), reflect.TypeFor[msgpack.Unmarshaler](),
	reflect.TypeFor[encoding.BinaryMarshaler](), reflect.TypeFor[encoding.BinaryUnmarshaler](),
	reflect.TypeFor[encoding.TextMarshaler](), reflect.TypeFor[encoding.TextUnmarshaler](),
}

// codesItself reports whether msgpack gives values of t a codec of their
// own making.
func codesItself(t reflect.Type) bool {
	for _, i := range selfCoders {
		if t.Implements(i) || reflect.PointerTo(t).Implements(i) {
			return true
		}
	}
	return false
}

// registerBulkFor registers the bulk codec of t if t is a slice or array
// type of numbers or bools whose codec msgpack would otherwise make by
// reflection, element by element.
func registerBulkFor(t reflect.Type) {
	if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
		return
	}
	if _, done := bulkRegistered.LoadOrStore(t, true); done {
		return
	}
	elem := t.Elem()
	c, ok := bulkCodecs[elem.Kind()]
	if !ok || codesItself(t) || codesItself(elem) {
		return
	}
	if t.Kind() == reflect.Slice && t.Name() == "" && elem.PkgPath() == "" {
		return // []float64 and the like: registered already
	}
	switch c := c.(type) {
	case *bulkCodec[float64]:
		registerLike(t, c)
	case *bulkCodec[float32]:
		registerLike(t, c)
	case *bulkCodec[int64]:
		registerLike(t, c)
	case *bulkCodec[int32]:
		registerLike(t, c)
	case *bulkCodec[int16]:
		registerLike(t, c)
	case *bulkCodec[int8]:
		registerLike(t, c)
	case *bulkCodec[uint64]:
		registerLike(t, c)
	case *bulkCodec[uint32]:
		registerLike(t, c)
	case *bulkCodec[uint16]:
		registerLike(t, c)
	case *bulkCodec[int]:
		registerLike(t, c)
	case *bulkCodec[uint]:
		registerLike(t, c)
	case *bulkCodec[bool]:
		registerLike(t, c)
	}
}

// registerLike registers for t, a slice or array type whose elements
// have the memory of a T, the codec c of []T.
func registerLike[T any](t reflect.Type, c *bulkCodec[T]) {
	if t.Kind() == reflect.Slice {
		msgpack.Register(reflect.Zero(t).Interface(),
			func(e *msgpack.Encoder, v reflect.Value) error {
				if v.IsNil() {
					return e.EncodeNil()
				}
				return c.encode(e, unsafe.Slice((*T)(v.UnsafePointer()), v.Len()))
			},
			func(d *msgpack.Decoder, v reflect.Value) error {
				old := unsafe.Slice((*T)(v.UnsafePointer()), v.Cap())[:v.Len()]
				xs, err := c.decode(d, old)
				switch {
				case err != nil:
					return err
				case xs == nil:
					v.Set(reflect.Zero(t))
				default:
					v.Set(reflect.NewAt(t, unsafe.Pointer(&xs)).Elem())
				}
				return nil
			})
		return
	}
	n := t.Len()
	msgpack.Register(reflect.Zero(t).Interface(),
		func(e *msgpack.Encoder, v reflect.Value) error {
			if !v.CanAddr() {
				a := reflect.New(t).Elem()
				a.Set(v)
				v = a
			}
			return c.encode(e, unsafe.Slice((*T)(v.Addr().UnsafePointer()), n))
		},
		func(d *msgpack.Decoder, v reflect.Value) error {
			if !v.CanAddr() {
				return fmt.Errorf("msgpack: decoding into an unaddressable %s", t)
			}
			dst := unsafe.Slice((*T)(v.Addr().UnsafePointer()), n)
			xs, err := c.decode(d, dst)
			switch {
			case err != nil:
				return err
			case xs == nil:
				return nil // nil: left as it was
			case len(xs) != n:
				return fmt.Errorf("%w: %s holds %d elements, got %d", registry.ErrBadPayload, t, n, len(xs))
			}
			if n > 0 && unsafe.SliceData(xs) != unsafe.SliceData(dst) {
				copy(dst, xs)
			}
			return nil
		})
}

var (
	bulkWalked sync.Map   // reflect.Type → true, once walkBulk has been through it
	bulkMu     sync.Mutex // one walkBulk at a time, done before anyone goes on
)

// prepareBulk registers the bulk codecs of the slices and arrays in the
// type of v, the first time it meets that type, and returns v.
// AppendValueWith and UnmarshalWith call it on what they encode or decode
// into: a type that no registered function has (a result decoded by a
// caller that did not register its function, say) then reads a packed
// slice too, and does so before msgpack caches the codecs of a struct's
// fields, which it does once a struct type is first used.
func prepareBulk(v any) any {
	t := reflect.TypeOf(v)
	if t == nil {
		return v
	}
	if _, ok := bulkWalked.Load(t); ok {
		return v
	}
	bulkMu.Lock()
	defer bulkMu.Unlock()
	if _, ok := bulkWalked.Load(t); !ok {
		walkBulk(t, map[reflect.Type]bool{})
		bulkWalked.Store(t, true)
	}
	return v
}

// walkBulk calls registerBulkFor on every type in t.
func walkBulk(t reflect.Type, seen map[reflect.Type]bool) {
	if seen[t] || codesItself(t) {
		return
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		registerBulkFor(t)
		walkBulk(t.Elem(), seen)
	case reflect.Pointer:
		walkBulk(t.Elem(), seen)
	case reflect.Map:
		walkBulk(t.Key(), seen)
		walkBulk(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				walkBulk(t.Field(i).Type, seen)
			}
		}
	}
}
