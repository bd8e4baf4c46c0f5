package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// msgpack primitives for envelope headers, written by hand: they are on
// every call's path and need neither reflection nor allocation.

// AppendUint appends the msgpack unsigned integer v, in its shortest form.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

// AppendStr appends the msgpack string s.
func AppendStr(b []byte, s string) []byte {
	if n := len(s); n < 32 {
		b = append(b, 0xa0|byte(n))
	} else {
		b = appendLen(b, n, 0xd9)
	}
	return append(b, s...)
}

// appendLen appends the header of a str or bin of n bytes whose 8-bit
// form is code8; the 16 and 32-bit forms follow it.
func appendLen(b []byte, n int, code8 byte) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, code8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, code8+1), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, code8+2), uint32(n))
}

// AppendBin appends the msgpack bin b (nil: the msgpack nil), as msgpack
// encodes a []byte.
func AppendBin(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 0xc0)
	}
	return append(appendLen(dst, len(b), 0xc4), b...)
}

// appendScalar appends the msgpack encoding of v, byte for byte as
// msgpack's encoder writes it, when v is of one of the commonest types
// of a call's argument or result; it reports whether it was. They then
// cost no encoder from the pool and no reflection.
func appendScalar(dst []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(dst, 0xc0), true
	case []byte:
		return AppendBin(dst, x), true
	case string:
		return AppendStr(dst, x), true
	case bool:
		return AppendBool(dst, x), true
	case int:
		return appendInt(dst, int64(x)), true
	case float64:
		return binary.BigEndian.AppendUint64(append(dst, 0xcb), math.Float64bits(x)), true
	}
	return dst, false
}

// AppendSmall appends the msgpack encoding of v, as AppendValueWith
// would, when v is a scalar of the commonest types (nil, bool, int,
// float64) or a []byte or string of at most 4 KiB, which never goes in a
// transient segment; it reports whether it was. v does not escape: a
// caller's value converted to any for it is not copied to the heap.
func AppendSmall(dst []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case []byte:
		if !small(len(x)) {
			return dst, false
		}
	case string:
		if !small(len(x)) {
			return dst, false
		}
	}
	out, ok := appendScalar(dst, v)
	if ok && TransientMin > 0 && len(out)-len(dst) >= TransientMin {
		return dst, false // AppendValueWith's: a transient segment, however low TransientMin was set
	}
	return out, ok
}

// small reports whether a bin or str of n bytes is small enough for
// AppendSmall to encode: at most 4 KiB. One over a low TransientMin is
// refused once encoded, as any value.
func small(n int) bool { return n <= 4<<10 }

// decodeScalar decodes data into v, a non-nil *int, *int64, *string,
// *bool or *float64, when data holds the plain msgpack form of such a
// value (an integer that fits, a str or bin, a bool, a float64), and
// reports whether it did: the commonest arguments and results then need
// no decoder from the pool. Anything else is left to msgpack, which
// decodes these forms the same way (a test compares), and says what is
// wrong.
func decodeScalar(data []byte, v any) bool {
	switch p := v.(type) {
	case *int:
		if n, k := parseInt[int](data); k > 0 && p != nil {
			*p = n
			return true
		}
	case *int64:
		if n, k := parseInt[int64](data); k > 0 && p != nil {
			*p = n
			return true
		}
	case *string:
		if n, hdr, ok := binHeader(data); ok && n <= len(data)-hdr && p != nil {
			*p = string(data[hdr : hdr+n])
			return true
		}
	case *bool:
		if len(data) > 0 && (data[0] == 0xc2 || data[0] == 0xc3) && p != nil {
			*p = data[0] == 0xc3
			return true
		}
	case *float64:
		if len(data) >= 9 && data[0] == 0xcb && p != nil {
			*p = math.Float64frombits(binary.BigEndian.Uint64(data[1:9]))
			return true
		}
	}
	return false
}

// ErrShort is a Reader's error when the data ends within a value.
var ErrShort = errors.New("truncated")

// Reader reads msgpack primitives from B, in place; the first error
// sticks in Err and makes later reads return zero values.
type Reader struct {
	B   []byte
	Err error
}

// Uint reads an unsigned integer.
func (r *Reader) Uint() uint64 {
	if r.Err != nil {
		return 0
	}
	if len(r.B) == 0 {
		r.Err = ErrShort
		return 0
	}
	c := r.B[0]
	var size int
	switch {
	case c < 0x80:
		r.B = r.B[1:]
		return uint64(c)
	case c == 0xcc:
		size = 1
	case c == 0xcd:
		size = 2
	case c == 0xce:
		size = 4
	case c == 0xcf:
		size = 8
	default:
		r.Err = fmt.Errorf("want an unsigned integer, got code 0x%02x", c)
		return 0
	}
	if len(r.B) < 1+size {
		r.Err = ErrShort
		return 0
	}
	var v uint64
	for _, x := range r.B[1 : 1+size] {
		v = v<<8 | uint64(x)
	}
	r.B = r.B[1+size:]
	return v
}

// Str reads a string; it returns prev when the bytes spell it, so as not
// to allocate.
func (r *Reader) Str(prev string) string {
	b := r.StrBytes()
	if b == nil {
		return ""
	}
	if string(b) == prev {
		return prev
	}
	return string(b)
}

// SkipStr passes over a string.
func (r *Reader) SkipStr() { r.StrBytes() }

// StrBytes reads a string's bytes, in place; nil after an error.
func (r *Reader) StrBytes() []byte {
	if r.Err != nil {
		return nil
	}
	if len(r.B) == 0 {
		r.Err = ErrShort
		return nil
	}
	c := r.B[0]
	var n, hdr int
	switch {
	case c&0xe0 == 0xa0:
		n, hdr = int(c&0x1f), 1
	case c == 0xd9 && len(r.B) >= 2:
		n, hdr = int(r.B[1]), 2
	case c == 0xda && len(r.B) >= 3:
		n, hdr = int(binary.BigEndian.Uint16(r.B[1:])), 3
	case c == 0xdb && len(r.B) >= 5:
		n, hdr = int(binary.BigEndian.Uint32(r.B[1:])), 5
	default:
		r.Err = fmt.Errorf("want a string, got code 0x%02x", c)
		return nil
	}
	if n < 0 || len(r.B) < hdr+n {
		r.Err = ErrShort
		return nil
	}
	b := r.B[hdr : hdr+n : hdr+n]
	r.B = r.B[hdr+n:]
	return b
}
