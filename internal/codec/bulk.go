package codec

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/internal/registry"
)

// Slices of numbers and bools encode and decode in bulk: one loop over
// the elements, no reflection per element. The representation stays
// standard msgpack (an array of numbers), byte for byte what msgpack v5
// writes for the sized types, so that any msgpack reader reads it; the
// decoders read any standard form, fast when each element has the form
// the encoders write. They are registered with msgpack for the whole
// process: the bytes are the same, only faster.
func init() {
	packable(registerBulk[float64](9, func(b []byte, x float64) []byte {
		return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(x))
	}, 0xcb, func(p []byte) float64 { return math.Float64frombits(binary.BigEndian.Uint64(p)) },
		func(d *msgpack.Decoder) (float64, error) { return d.DecodeFloat64() }))
	packable(registerBulk[float32](5, func(b []byte, x float32) []byte {
		return binary.BigEndian.AppendUint32(append(b, 0xca), math.Float32bits(x))
	}, 0xca, func(p []byte) float32 { return math.Float32frombits(binary.BigEndian.Uint32(p)) },
		func(d *msgpack.Decoder) (float32, error) { return d.DecodeFloat32() }))
	packable(registerBulk[int64](9, func(b []byte, x int64) []byte {
		return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(x))
	}, 0xd3, func(p []byte) int64 { return int64(binary.BigEndian.Uint64(p)) }, decodeInt[int64]))
	packable(registerBulk[int32](5, func(b []byte, x int32) []byte {
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(x))
	}, 0xd2, func(p []byte) int32 { return int32(binary.BigEndian.Uint32(p)) }, decodeInt[int32]))
	packable(registerBulk[int16](3, func(b []byte, x int16) []byte {
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(x))
	}, 0xd1, func(p []byte) int16 { return int16(binary.BigEndian.Uint16(p)) }, decodeInt[int16]))
	packable(registerBulk[int8](2, func(b []byte, x int8) []byte {
		return append(b, 0xd0, byte(x))
	}, 0xd0, func(p []byte) int8 { return int8(p[0]) }, decodeInt[int8]))
	packable(registerBulk[uint64](9, func(b []byte, x uint64) []byte {
		return binary.BigEndian.AppendUint64(append(b, 0xcf), x)
	}, 0xcf, func(p []byte) uint64 { return binary.BigEndian.Uint64(p) }, decodeUint[uint64]))
	packable(registerBulk[uint32](5, func(b []byte, x uint32) []byte {
		return binary.BigEndian.AppendUint32(append(b, 0xce), x)
	}, 0xce, func(p []byte) uint32 { return binary.BigEndian.Uint32(p) }, decodeUint[uint32]))
	packable(registerBulk[uint16](3, func(b []byte, x uint16) []byte {
		return binary.BigEndian.AppendUint16(append(b, 0xcd), x)
	}, 0xcd, func(p []byte) uint16 { return binary.BigEndian.Uint16(p) }, decodeUint[uint16]))
	// int and uint in their smallest form, as msgpack v5 writes them.
	packable(registerParsed[int](9, func(b []byte, x int) []byte { return appendInt(b, int64(x)) }, parseInt[int], decodeInt[int]))
	packable(registerParsed[uint](9, func(b []byte, x uint) []byte { return appendUint(b, uint64(x)) }, parseUint[uint], decodeUint[uint]))
	registerBulk[bool](1, func(b []byte, x bool) []byte { return AppendBool(b, x) },
		0, nil, func(d *msgpack.Decoder) (bool, error) { return d.DecodeBool() })
}

type integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64
}

type unsigned interface {
	~uint | ~uint16 | ~uint32 | ~uint64
}

// decodeInt reads one integer of any msgpack form into T, refusing one
// that does not fit.
func decodeInt[T integer](d *msgpack.Decoder) (T, error) {
	n, err := d.DecodeInt64()
	if err == nil && int64(T(n)) != n {
		err = fmt.Errorf("%w: %d overflows %T", registry.ErrBadPayload, n, T(0))
	}
	return T(n), err
}

// decodeUint reads one unsigned integer of any msgpack form into T,
// refusing one that does not fit.
func decodeUint[T unsigned](d *msgpack.Decoder) (T, error) {
	if c, err := d.PeekCode(); err == nil && (c >= 0xe0 || c >= 0xd0 && c <= 0xd3) { // a signed form
		i, err := d.DecodeInt64()
		if err == nil && i < 0 {
			err = fmt.Errorf("%w: %d is negative, for %T", registry.ErrBadPayload, i, T(0))
		}
		return T(i), err
	}
	n, err := d.DecodeUint64()
	if err == nil && uint64(T(n)) != n {
		err = fmt.Errorf("%w: %d overflows %T", registry.ErrBadPayload, n, T(0))
	}
	return T(n), err
}

// registerBulk registers the bulk codec of []T: each element takes size
// bytes as appendOne writes it, with tag as its first byte; fromBytes
// reads the size-1 bytes after the tag; decodeOne reads an element of
// any other form. A nil fromBytes (bool) decodes each element with
// decodeOne, still without reflection.
func registerBulk[T any](size int, appendOne func([]byte, T) []byte, tag byte, fromBytes func([]byte) T, decodeOne func(*msgpack.Decoder) (T, error)) *bulkCodec[T] {
	var fixed *fixedForm[T]
	if fromBytes != nil {
		fixed = &fixedForm[T]{size: size, tag: tag, from: fromBytes}
	}
	return register(size, appendOne, fixed, nil, decodeOne)
}

// fixedForm is the one form of an element the fast loop reads: size
// bytes, the first of them tag, the rest read by from.
type fixedForm[T any] struct {
	size int
	tag  byte
	from func([]byte) T
}

// registerParsed is registerBulk with parse reading one element at the
// start of p, and its length, or 0 for a form it leaves to decodeOne.
func registerParsed[T any](size int, appendOne func([]byte, T) []byte, parse func(p []byte) (T, int), decodeOne func(*msgpack.Decoder) (T, error)) *bulkCodec[T] {
	return register(size, appendOne, nil, parse, decodeOne)
}

// register registers the codec of []T: elements of the fixed form, or
// read by parse, in one loop over the bytes; the others by decodeOne.
// Numbers also have a packed form (see packed.go), written for a
// receiver on this host and always read.
func register[T any](size int, appendOne func([]byte, T) []byte, fixed *fixedForm[T], parse func(p []byte) (T, int), decodeOne func(*msgpack.Decoder) (T, error)) *bulkCodec[T] {
	c := &bulkCodec[T]{size: size, appendOne: appendOne, fixed: fixed, parse: parse, decodeOne: decodeOne}
	bulkCodecs[reflect.TypeFor[T]().Kind()] = c
	msgpack.Register([]T(nil),
		func(e *msgpack.Encoder, v reflect.Value) error {
			if v.IsNil() {
				return e.EncodeNil()
			}
			return c.encode(e, v.Interface().([]T))
		},
		func(d *msgpack.Decoder, v reflect.Value) error {
			xs, err := c.decode(d, v.Interface().([]T))
			if err != nil {
				return err
			}
			if xs == nil {
				v.Set(reflect.Zero(v.Type()))
				return nil
			}
			v.Set(reflect.ValueOf(xs))
			return nil
		})
	return c
}

// bulkCodecs holds the codec of each element kind, as a *bulkCodec of
// that kind's predeclared type, for named slice types and arrays.
var bulkCodecs = map[reflect.Kind]any{}

// bulkCodec encodes and decodes []T in bulk.
type bulkCodec[T any] struct {
	size      int
	appendOne func([]byte, T) []byte
	fixed     *fixedForm[T]
	parse     func(p []byte) (T, int)
	decodeOne func(*msgpack.Decoder) (T, error)
	// The packed form, for numbers (see packable); packed is 0 for
	// bool, which has none.
	packed    packedKind
	encPacked func(*msgpack.Encoder, []T) error
	decPacked func(*msgpack.Decoder, []T) ([]T, error)
}

// encode writes xs, not nil: packed for a receiver on this host, as a
// standard array otherwise.
func (c *bulkCodec[T]) encode(e *msgpack.Encoder, xs []T) error {
	if c.packed != 0 && len(xs) >= PackedMin && sameHost(e) {
		return c.encPacked(e, xs)
	}
	size, appendOne := c.size, c.appendOne
	if w, ok := e.Writer().(*appendWriter); ok {
		w.b = AppendArrayHeader(growBytes(w.b, 5+size*len(xs)), len(xs))
		for _, x := range xs {
			w.b = appendOne(w.b, x)
		}
		return nil
	}
	buf := AppendArrayHeader(make([]byte, 0, 5+size*len(xs)), len(xs))
	for _, x := range xs {
		buf = appendOne(buf, x)
	}
	_, err := e.Writer().Write(buf)
	return err
}

// decode reads a slice of either form, into xs if it has room; nil for
// a msgpack nil.
func (c *bulkCodec[T]) decode(d *msgpack.Decoder, xs []T) ([]T, error) {
	if code, err := d.PeekCode(); err == nil && isExtCode(code) && c.packed != 0 {
		return c.decPacked(d, xs)
	}
	n, err := d.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, nil
	}
	if xs != nil && cap(xs) >= n {
		xs = xs[:n]
	} else {
		xs = make([]T, n)
	}
	fixed, parse, decodeOne := c.fixed, c.parse, c.decodeOne
	i := 0
	if r, ok := d.Buffered().(*ctxReader); ok && (fixed != nil || parse != nil) && r.data != nil {
		// In place: as long as the elements have a form we read
		// fast, one loop over the bytes.
		p := r.data[len(r.data)-r.Len():]
		if fixed != nil {
			size, tag, from := fixed.size, fixed.tag, fixed.from
			for i < n && len(p) >= size && p[0] == tag {
				xs[i] = from(p[1:size])
				p = p[size:]
				i++
			}
		} else {
			for i < n {
				x, k := parse(p)
				if k == 0 {
					break
				}
				xs[i], p = x, p[k:]
				i++
			}
		}
		if _, err := r.Seek(int64(len(r.data)-len(p)), io.SeekStart); err != nil {
			return nil, err
		}
	}
	for ; i < n; i++ {
		if xs[i], err = decodeOne(d); err != nil {
			return nil, fmt.Errorf("element %d of %d: %w", i, n, err)
		}
	}
	return xs, nil
}

// growBytes makes room for n more bytes in b, at once rather than by
// doubling as the elements are appended.
func growBytes(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

// appendInt appends n in its smallest msgpack form, as msgpack v5's
// EncodeInt does.
func appendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
}

// appendUint appends n in its smallest msgpack form, as msgpack v5's
// EncodeUint does.
func appendUint(b []byte, n uint64) []byte { return AppendUint(b, n) }

// parseInt reads an integer of any msgpack form at the start of p, with
// its length; 0 for anything else, or a value that does not fit T.
func parseInt[T integer](p []byte) (T, int) {
	n, k, ok := parseInteger(p)
	if !ok || k == 0 || n.neg && int64(T(n.i)) != n.i || !n.neg && (n.u > math.MaxInt64 || uint64(T(n.u)) != n.u || T(n.u) < 0) {
		return 0, 0
	}
	if n.neg {
		return T(n.i), k
	}
	return T(n.u), k
}

// parseUint is parseInt for unsigned T.
func parseUint[T unsigned](p []byte) (T, int) {
	n, k, ok := parseInteger(p)
	if !ok || k == 0 || n.neg || uint64(T(n.u)) != n.u {
		return 0, 0
	}
	return T(n.u), k
}

// integerValue is a msgpack integer: u when not negative, i when so.
type integerValue struct {
	neg bool
	u   uint64
	i   int64
}

func parseInteger(p []byte) (integerValue, int, bool) {
	if len(p) == 0 {
		return integerValue{}, 0, false
	}
	c := p[0]
	switch {
	case c <= 0x7f:
		return integerValue{u: uint64(c)}, 1, true
	case c >= 0xe0:
		return integerValue{neg: true, i: int64(int8(c))}, 1, true
	}
	var need int
	switch c {
	case 0xcc, 0xd0:
		need = 2
	case 0xcd, 0xd1:
		need = 3
	case 0xce, 0xd2:
		need = 5
	case 0xcf, 0xd3:
		need = 9
	}
	if need == 0 || len(p) < need {
		return integerValue{}, 0, false
	}
	q := p[1:need]
	switch c {
	case 0xcc:
		return integerValue{u: uint64(q[0])}, need, true
	case 0xcd:
		return integerValue{u: uint64(binary.BigEndian.Uint16(q))}, need, true
	case 0xce:
		return integerValue{u: uint64(binary.BigEndian.Uint32(q))}, need, true
	case 0xcf:
		return integerValue{u: binary.BigEndian.Uint64(q)}, need, true
	case 0xd0:
		return signed(int64(int8(q[0]))), need, true
	case 0xd1:
		return signed(int64(int16(binary.BigEndian.Uint16(q)))), need, true
	case 0xd2:
		return signed(int64(int32(binary.BigEndian.Uint32(q)))), need, true
	}
	return signed(int64(binary.BigEndian.Uint64(q))), need, true
}

func signed(i int64) integerValue {
	if i >= 0 {
		return integerValue{u: uint64(i)}
	}
	return integerValue{neg: true, i: i}
}
