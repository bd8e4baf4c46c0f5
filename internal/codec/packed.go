package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/internal/registry"
)

// The packed form of a slice of numbers. For a receiver on this host
// (the context of [AppendValueWith] implements [ShmReceiver] with a
// non-zero pid), a slice of at least [PackedMin] numbers travels as a
// msgpack extension of type [PackedExtType] whose data is one byte, the
// element type (a [packedKind]), then the elements' bytes as they are in
// memory: encoding is one copy, decoding another. The elements are
// little-endian, which is how every host Go runs on here keeps them; a
// big-endian host writes and reads the same little-endian bytes, one
// element at a time. int and uint are packed as 8-byte elements whatever
// their size in memory.
//
// Every decoder of a slice of numbers reads both forms, always, and
// converts between element types as it does for the standard form: a
// packed int32 reads into a []int64, a packed int64 of 300 into a []int8
// is refused naming the overflow, a packed float64 into a []float32 or
// into integers is refused, as msgpack refuses a float64 there. Decoded
// into an interface{}, a packed slice gives what its standard form gives:
// a []interface{} of the per-element types msgpack v5 gives the numbers
// the standard encoder writes.
//
// bool slices have no packed form: their standard form already takes one
// byte an element, and reading them back needs a check of every byte.

// PackedExtType is the msgpack extension type of a packed slice of
// numbers (2 is a shared-memory buffer, 3 a transient segment).
const PackedExtType int8 = 4

// PackedMin is the fewest elements a slice packs with. Below it a slice
// is at most a few hundred bytes, which the standard form encodes and
// decodes in about the time the packed form takes to set up, and stays
// readable by any msgpack reader; above it the copy wins by far (a
// []float64 takes 8 bytes an element packed, 9 standard, and is copied at
// memory speed instead of converted one element at a time).
const PackedMin = 16

// packedKind is the element type of a packed slice, its first byte.
type packedKind byte

const (
	packedFloat64 packedKind = 1 + iota
	packedFloat32
	packedInt64
	packedInt32
	packedInt16
	packedInt8
	packedUint64
	packedUint32
	packedUint16
	packedInt  // an int, as 8 bytes
	packedUint // a uint, as 8 bytes
	packedKinds
)

// packedKindInfo describes the elements of a packedKind.
type packedKindInfo struct {
	name  string
	size  int
	class byte // 'f' float, 'i' signed, 'u' unsigned
	kind  reflect.Kind
}

var packedInfo = [packedKinds]packedKindInfo{
	packedFloat64: {"float64", 8, 'f', reflect.Float64},
	packedFloat32: {"float32", 4, 'f', reflect.Float32},
	packedInt64:   {"int64", 8, 'i', reflect.Int64},
	packedInt32:   {"int32", 4, 'i', reflect.Int32},
	packedInt16:   {"int16", 2, 'i', reflect.Int16},
	packedInt8:    {"int8", 1, 'i', reflect.Int8},
	packedUint64:  {"uint64", 8, 'u', reflect.Uint64},
	packedUint32:  {"uint32", 4, 'u', reflect.Uint32},
	packedUint16:  {"uint16", 2, 'u', reflect.Uint16},
	packedInt:     {"int", 8, 'i', reflect.Int},
	packedUint:    {"uint", 8, 'u', reflect.Uint},
}

// packedKindOf is the packedKind of the elements of kind k, 0 if none.
func packedKindOf(k reflect.Kind) packedKind {
	for pk := packedKind(1); pk < packedKinds; pk++ {
		if packedInfo[pk].kind == k {
			return pk
		}
	}
	return 0
}

// nativeLittle: the packed bytes are the bytes in memory.
var nativeLittle = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// number is the element types with a packed form.
type number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// packable gives c, the bulk codec of a slice of numbers, its packed form.
func packable[T number](c *bulkCodec[T]) {
	c.packed = packedKindOf(reflect.TypeFor[T]().Kind())
	c.encPacked = func(e *msgpack.Encoder, xs []T) error { return encodePacked(e, c.packed, xs) }
	c.decPacked = func(d *msgpack.Decoder, xs []T) ([]T, error) { return decodePacked(d, c.packed, xs) }
}

// sameHost reports whether e encodes for a receiver on this host.
func sameHost(e *msgpack.Encoder) bool {
	r, ok := EncoderContext(e).(ShmReceiver)
	return ok && r.ShmReceiver() != 0
}

// isExtCode reports whether c starts a msgpack extension.
func isExtCode(c byte) bool { return c >= 0xc7 && c <= 0xc9 || c >= 0xd4 && c <= 0xd8 }

// asBytes is the memory of xs.
func asBytes[T any](xs []T) []byte {
	if len(xs) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(xs))), len(xs)*int(unsafe.Sizeof(xs[0])))
}

// encodePacked writes xs, of packed kind k, in the packed form.
func encodePacked[T number](e *msgpack.Encoder, k packedKind, xs []T) error {
	size := packedInfo[k].size
	n := 1 + size*len(xs)
	if n < 0 || uint64(n) > math.MaxUint32 || n/size < len(xs) {
		return fmt.Errorf("a slice of %d %s is too long for a msgpack extension", len(xs), packedInfo[k].name)
	}
	w, direct := e.Writer().(*appendWriter)
	if direct {
		w.b = growBytes(w.b, 6+n)
	}
	if err := e.EncodeExtHeader(PackedExtType, n); err != nil {
		return err
	}
	var body []byte
	if nativeLittle && int(unsafe.Sizeof(T(0))) == size {
		if direct {
			w.b = append(append(w.b, byte(k)), asBytes(xs)...)
			return nil
		}
		body = append(append(make([]byte, 0, n), byte(k)), asBytes(xs)...)
	} else {
		body = append(make([]byte, 0, n), byte(k))
		for _, x := range xs {
			body = appendLittle(body, k, x)
		}
	}
	_, err := e.Writer().Write(body)
	return err
}

// appendLittle appends x as an element of kind k, little-endian.
func appendLittle[T number](b []byte, k packedKind, x T) []byte {
	switch packedInfo[k].size {
	case 1:
		return append(b, byte(x))
	case 2:
		return binary.LittleEndian.AppendUint16(b, uint16(x))
	case 4:
		if k == packedFloat32 {
			return binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(x)))
		}
		return binary.LittleEndian.AppendUint32(b, uint32(x))
	}
	if k == packedFloat64 {
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(x)))
	}
	if packedInfo[k].class == 'u' {
		return binary.LittleEndian.AppendUint64(b, uint64(x))
	}
	return binary.LittleEndian.AppendUint64(b, uint64(int64(x)))
}

// errPacked is a bad packed slice.
func errPacked(format string, args ...any) error {
	return fmt.Errorf("%w: packed slice: %s", registry.ErrBadPayload, fmt.Sprintf(format, args...))
}

// readPacked reads the extension at d, which must be a packed slice, and
// returns its element kind and the elements' bytes: in place when d reads
// from UnmarshalWith, a copy otherwise.
func readPacked(d *msgpack.Decoder) (packedKind, []byte, error) {
	id, n, err := d.DecodeExtHeader()
	if err != nil {
		return 0, nil, err
	}
	if id != PackedExtType {
		return 0, nil, errPacked("want extension %d, got extension %d", PackedExtType, id)
	}
	body, err := readExtBody(d, n)
	if err != nil {
		return 0, nil, err
	}
	return parsePacked(body)
}

// readExtBody reads the n bytes of an extension whose header d has read:
// in place when d reads from UnmarshalWith, a copy otherwise.
func readExtBody(d *msgpack.Decoder, n int) ([]byte, error) {
	if r, ok := d.Buffered().(*ctxReader); ok && r.data != nil {
		if n > r.Len() {
			return nil, errPacked("%d bytes announced, %d left", n, r.Len())
		}
		start := len(r.data) - r.Len()
		if _, err := r.Seek(int64(start+n), io.SeekStart); err != nil {
			return nil, err
		}
		return r.data[start : start+n], nil
	}
	// Read by pieces, so that a length that lies allocates no more than
	// the bytes that are there.
	var body []byte
	for len(body) < n {
		k := min(n-len(body), 1<<20)
		body = append(body, make([]byte, k)...)
		if err := d.ReadFull(body[len(body)-k:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, errPacked("%d bytes announced, fewer left", n)
			}
			return nil, err
		}
	}
	return body, nil
}

// parsePacked splits the body of a packed slice into its element kind
// and the elements' bytes.
func parsePacked(body []byte) (packedKind, []byte, error) {
	n := len(body)
	if n == 0 {
		return 0, nil, errPacked("no element type")
	}
	k := packedKind(body[0])
	if k == 0 || k >= packedKinds {
		return 0, nil, errPacked("unknown element type %d", body[0])
	}
	if (n-1)%packedInfo[k].size != 0 {
		return 0, nil, errPacked("%d bytes of %s, not a whole number of %d-byte elements", n-1, packedInfo[k].name, packedInfo[k].size)
	}
	return k, body[1:], nil
}

// decodePacked reads a packed slice into a []T of packed kind want,
// reusing xs if it has room.
func decodePacked[T number](d *msgpack.Decoder, want packedKind, xs []T) ([]T, error) {
	k, p, err := readPacked(d)
	if err != nil {
		return nil, err
	}
	n := len(p) / packedInfo[k].size
	if k == want && nativeLittle && int(unsafe.Sizeof(T(0))) == packedInfo[k].size {
		if xs != nil && cap(xs) >= n {
			xs = xs[:n]
			copy(asBytes(xs), p)
			return xs, nil
		}
		if len(p) >= 16 {
			// One copy, no clearing first: an allocation of 16 bytes
			// or more is aligned for any number.
			b := append([]byte(nil), p...)
			return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n), nil
		}
		xs = make([]T, n)
		copy(asBytes(xs), p)
		return xs, nil
	}
	if xs == nil || cap(xs) < n {
		xs = make([]T, n)
	}
	xs = xs[:n]
	to := packedKindOf(reflect.TypeFor[T]().Kind())
	for i := range xs {
		x, err := convertPacked[T](k, p[i*packedInfo[k].size:], to)
		if err != nil {
			return nil, fmt.Errorf("element %d of %d: %w", i, n, err)
		}
		xs[i] = x
	}
	return xs, nil
}

// packedNumber is one element read from a packed slice.
type packedNumber struct {
	class byte // as packedKindInfo
	i     int64
	u     uint64
	f     float64
}

// loadPacked reads the element of kind k at the start of p.
func loadPacked(k packedKind, p []byte) packedNumber {
	switch k {
	case packedFloat64:
		return packedNumber{class: 'f', f: math.Float64frombits(binary.LittleEndian.Uint64(p))}
	case packedFloat32:
		return packedNumber{class: 'f', f: float64(math.Float32frombits(binary.LittleEndian.Uint32(p)))}
	case packedInt64, packedInt:
		return packedNumber{class: 'i', i: int64(binary.LittleEndian.Uint64(p))}
	case packedInt32:
		return packedNumber{class: 'i', i: int64(int32(binary.LittleEndian.Uint32(p)))}
	case packedInt16:
		return packedNumber{class: 'i', i: int64(int16(binary.LittleEndian.Uint16(p)))}
	case packedInt8:
		return packedNumber{class: 'i', i: int64(int8(p[0]))}
	case packedUint64, packedUint:
		return packedNumber{class: 'u', u: binary.LittleEndian.Uint64(p)}
	case packedUint32:
		return packedNumber{class: 'u', u: uint64(binary.LittleEndian.Uint32(p))}
	}
	return packedNumber{class: 'u', u: uint64(binary.LittleEndian.Uint16(p))}
}

// convertPacked reads the element of kind k at the start of p as a T, of
// packed kind to, as the standard form of the same number would decode:
// integers into floats, float32 into float64, integers that fit into
// integers; refused otherwise.
func convertPacked[T number](k packedKind, p []byte, to packedKind) (T, error) {
	x := loadPacked(k, p)
	var zero T
	switch packedInfo[to].class {
	case 'f':
		switch {
		case x.class == 'i':
			return T(x.i), nil
		case x.class == 'u':
			return T(x.u), nil
		case k == packedFloat64 && to == packedFloat32:
			return 0, fmt.Errorf("%w: a float64 for %T", registry.ErrBadPayload, zero)
		}
		return T(x.f), nil
	case 'i':
		switch x.class {
		case 'f':
			return 0, fmt.Errorf("%w: a %s for %T", registry.ErrBadPayload, packedInfo[k].name, zero)
		case 'u':
			if x.u > math.MaxInt64 || uint64(T(x.u)) != x.u {
				return 0, fmt.Errorf("%w: %d overflows %T", registry.ErrBadPayload, x.u, zero)
			}
			return T(x.u), nil
		}
		if int64(T(x.i)) != x.i {
			return 0, fmt.Errorf("%w: %d overflows %T", registry.ErrBadPayload, x.i, zero)
		}
		return T(x.i), nil
	}
	switch x.class {
	case 'f':
		return 0, fmt.Errorf("%w: a %s for %T", registry.ErrBadPayload, packedInfo[k].name, zero)
	case 'i':
		if x.i < 0 {
			return 0, fmt.Errorf("%w: %d is negative, for %T", registry.ErrBadPayload, x.i, zero)
		}
		x.u = uint64(x.i)
	}
	if uint64(T(x.u)) != x.u {
		return 0, fmt.Errorf("%w: %d overflows %T", registry.ErrBadPayload, x.u, zero)
	}
	return T(x.u), nil
}

// appendStandard appends the standard form of the element of kind k at
// the start of p: what the bulk encoder of its type writes.
func appendStandard(b []byte, k packedKind, p []byte) []byte {
	x := loadPacked(k, p)
	switch k {
	case packedFloat64:
		return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(x.f))
	case packedFloat32:
		return binary.BigEndian.AppendUint32(append(b, 0xca), math.Float32bits(float32(x.f)))
	case packedInt64:
		return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(x.i))
	case packedInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(x.i))
	case packedInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(x.i))
	case packedInt8:
		return append(b, 0xd0, byte(x.i))
	case packedUint64:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), x.u)
	case packedUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(x.u))
	case packedUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(x.u))
	case packedInt:
		return appendInt(b, x.i)
	}
	return appendUint(b, x.u)
}

// standardForm is the standard msgpack array of the packed elements p of
// kind k.
func standardForm(k packedKind, p []byte) []byte {
	size := packedInfo[k].size
	n := len(p) / size
	b := AppendArrayHeader(make([]byte, 0, 5+9*n), n)
	for i := range n {
		b = appendStandard(b, k, p[i*size:])
	}
	return b
}

// packedAny is what msgpack v5 gives an interface{} for a packed slice:
// its extension decoder cannot give a slice (it makes the value it fills
// with reflect.New of the registered type, and for a slice type sets it
// to a pointer to an element). UnmarshalWith replaces it, wherever it is
// in the value decoded, with its []interface{} (see fixPackedAny); a
// plain msgpack.Unmarshal leaves it, as a *packedAny.
type packedAny struct {
	v []any
}

func init() {
	msgpack.RegisterExtDecoder(PackedExtType, (*packedAny)(nil), func(d *msgpack.Decoder, v reflect.Value, n int) error {
		// v is a *packedAny; what follows the header is n bytes, the
		// element kind first.
		body, err := readExtBody(d, n)
		if err != nil {
			return err
		}
		k, p, err := parsePacked(body)
		if err != nil {
			return err
		}
		dec := msgpack.NewDecoder(bytes.NewReader(standardForm(k, p)))
		xs, err := dec.DecodeSlice()
		if err != nil {
			return err
		}
		v.Interface().(*packedAny).v = xs
		if _, ok := d.Buffered().(*ctxReader); !ok {
			return nil // not from UnmarshalWith: nobody will replace it
		}
		if _, loaded := packedAnyDecoders.LoadOrStore(d, true); !loaded {
			packedAnyPending.Add(1)
		}
		return nil
	})
}

var (
	// packedAnyDecoders holds the decoders that made a packedAny in the
	// value they decode, packedAnyPending how many, so that UnmarshalWith
	// looks no further when there are none.
	packedAnyDecoders sync.Map // *msgpack.Decoder → true
	packedAnyPending  atomic.Int64

	packedAnyType = reflect.TypeFor[*packedAny]()
	// mayHoldAny caches holdsInterface by type.
	mayHoldAny sync.Map // reflect.Type → bool
)

// fixPackedAny is called by UnmarshalWith with the decoder it used, the
// value it decoded into and the error of the decoding: if the decoder
// made packedAny values (packed slices decoded into an interface{}), each
// is replaced, wherever it is in v, with its []interface{}.
func fixPackedAny(d *msgpack.Decoder, v any, err error) error {
	if packedAnyPending.Load() == 0 {
		return err
	}
	if _, ok := packedAnyDecoders.LoadAndDelete(d); !ok {
		return err
	}
	packedAnyPending.Add(-1)
	if err == nil {
		replacePackedAny(reflect.ValueOf(v), map[unsafe.Pointer]bool{})
	}
	return err
}

// replacePackedAny replaces the packedAny values in v with their slices.
// seen holds the pointers followed, against a cycle in a value decoded
// into.
func replacePackedAny(v reflect.Value, seen map[unsafe.Pointer]bool) {
	if !v.IsValid() || !holdsInterface(v.Type()) {
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		e := v.Elem()
		if e.Type() == packedAnyType {
			if v.CanSet() {
				v.Set(reflect.ValueOf(e.Interface().(*packedAny).v))
			}
			return
		}
		replacePackedAny(e, seen)
	case reflect.Pointer:
		if !v.IsNil() && !seen[v.UnsafePointer()] {
			seen[v.UnsafePointer()] = true
			replacePackedAny(v.Elem(), seen)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				replacePackedAny(v.Field(i), seen)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			replacePackedAny(v.Index(i), seen)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			// A map's values cannot be set in place: a copy is fixed
			// and put back when it held a packedAny.
			e := it.Value()
			if e.Kind() == reflect.Interface && !e.IsNil() && e.Elem().Type() == packedAnyType {
				v.SetMapIndex(it.Key(), reflect.ValueOf(e.Elem().Interface().(*packedAny).v))
				continue
			}
			if e.Kind() == reflect.Interface || e.Kind() == reflect.Struct || e.Kind() == reflect.Array {
				c := reflect.New(e.Type()).Elem()
				c.Set(e)
				replacePackedAny(c, seen)
				v.SetMapIndex(it.Key(), c)
				continue
			}
			replacePackedAny(e, seen)
		}
	}
}

// holdsInterface reports whether a value of type t can hold an interface
// value, which a packedAny may be in.
func holdsInterface(t reflect.Type) bool {
	if h, ok := mayHoldAny.Load(t); ok {
		return h.(bool)
	}
	h := holdsInterfaceWalk(t, map[reflect.Type]bool{})
	mayHoldAny.Store(t, h)
	return h
}

func holdsInterfaceWalk(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return holdsInterfaceWalk(t.Elem(), seen)
	case reflect.Map:
		return holdsInterfaceWalk(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if t.Field(i).IsExported() && holdsInterfaceWalk(t.Field(i).Type, seen) {
				return true
			}
		}
	}
	return false
}
