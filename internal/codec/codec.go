package codec

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"

	"github.com/processional/processional/internal/registry"
	"github.com/vmihailenco/msgpack/v5"
)

// The value codec is msgpack (github.com/vmihailenco/msgpack/v5) with its
// defaults: structs travel as maps keyed by field name (the `msgpack` tag
// renames a field), so that two binaries whose structs differ by a field
// still understand each other.

// appendWriter is the io.Writer and io.ByteWriter msgpack writes into.
type appendWriter struct {
	b   []byte
	ctx any // see AppendValueWith
}

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *appendWriter) WriteByte(c byte) error      { w.b = append(w.b, c); return nil }
func (w *appendWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

type encoder struct {
	w   appendWriter
	enc *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = msgpack.NewEncoder(&e.w)
	return e
}}

type decoder struct {
	r   ctxReader
	dec *msgpack.Decoder
}

// ctxReader is the reader msgpack decodes from, carrying the context of
// UnmarshalWith for custom decoders (see DecoderContext).
type ctxReader struct {
	bytes.Reader
	ctx  any
	data []byte // what Reader reads, for the bulk decoders to read in place
}

var decoders = sync.Pool{New: func() any {
	d := &decoder{}
	d.dec = msgpack.NewDecoder(&d.r)
	return d
}}

// AppendValue appends the msgpack encoding of v to dst. A value that cannot
// be encoded gives an error wrapping [registry.ErrEncode] that names its type.
func AppendValue(dst []byte, v any) (out []byte, err error) {
	return AppendValueWith(dst, v, nil)
}

// AppendValueWith is AppendValue with a context that the custom encoders
// of the values inside v read with [EncoderContext]: what a reference
// needs to know of the call it travels in.
func AppendValueWith(dst []byte, v any, ctx any) (out []byte, err error) {
	if a, ok := v.(Appender); ok {
		return a.AppendMsgpack(dst, ctx)
	}
	start := len(dst)
	out, ok := appendScalar(dst, v)
	if !ok {
		if err := checkCycles(v); err != nil {
			return dst, err
		}
		if out, err = encode(dst, v, ctx); err != nil {
			return dst, err
		}
	}
	// A big value to a process of this host: in a transient segment.
	if n := len(out) - start; TransientMin > 0 && n >= TransientMin {
		if r, ok := ctx.(TransientReceiver); ok && r.TransientTo() != 0 && uint64(n) <= r.MaxValue() {
			out = toTransient(out, start, r)
		}
	}
	return out, nil
}

// encode appends the msgpack encoding of v to dst, with msgpack.
func encode(dst []byte, v any, ctx any) (out []byte, err error) {
	e := encoders.Get().(*encoder)
	e.w.b, e.w.ctx = dst, ctx
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %T: %v", registry.ErrEncode, v, r)
		}
		e.w.b, e.w.ctx = nil, nil
		encoders.Put(e)
	}()
	if err := e.enc.Encode(prepareBulk(v)); err != nil { // packed_named.go: named slices and arrays in bulk
		return dst, fmt.Errorf("%w: %T: %w", registry.ErrEncode, v, err)
	}
	return e.w.b, nil
}

// Appender is a value that appends its own msgpack encoding, given the
// context of [AppendValueWith], with no encoder in between: for the
// envelopes of calls made on every call's path. It is used only at the top
// of a value: inside another, a value is encoded by msgpack.
type Appender interface {
	AppendMsgpack(dst []byte, ctx any) ([]byte, error)
}

// AppendArrayHeader appends the header of a msgpack array of n elements.
func AppendArrayHeader(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x90|byte(n))
	case n <= 0xffff:
		return append(dst, 0xdc, byte(n>>8), byte(n))
	}
	return append(dst, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// AppendBool appends the msgpack bool b.
func AppendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, 0xc3)
	}
	return append(dst, 0xc2)
}

// EncoderContext returns the context given to [AppendValueWith], for a
// custom encoder (msgpack.CustomEncoder) called from it; nil otherwise.
func EncoderContext(e *msgpack.Encoder) any {
	if w, ok := e.Writer().(*appendWriter); ok {
		return w.ctx
	}
	return nil
}

// DecoderContext returns the context given to [UnmarshalWith], for a
// custom decoder (msgpack.CustomDecoder) called from it; nil otherwise.
func DecoderContext(d *msgpack.Decoder) any {
	if r, ok := d.Buffered().(*ctxReader); ok {
		return r.ctx
	}
	return nil
}

// Marshal returns the msgpack encoding of v.
func Marshal(v any) ([]byte, error) { return AppendValue(nil, v) }

// Unmarshal decodes the msgpack value in data into v, a non-nil pointer.
// Decoding never panics: a malformed payload is an error. A payload whose
// arrays or maps declare more elements than it holds is refused before
// anything is allocated for them (see valueLen).
func Unmarshal(data []byte, v any) (err error) {
	return UnmarshalWith(data, v, nil)
}

// UnmarshalWith is Unmarshal with a context that the custom decoders of
// the values inside v read with [DecoderContext]: what a reference needs
// to bind itself to the process that receives it.
func UnmarshalWith(data []byte, v any, ctx any) (err error) {
	if isTransient(data) {
		return unmarshalTransient(data, v, ctx)
	}
	if p, ok := v.(*[]byte); ok && p != nil {
		// A bin or a str into a []byte, the commonest small result:
		// copied straight out, with no decoder taken from the pool.
		if n, hdr, ok := binHeader(data); ok && n <= len(data)-hdr {
			b := append([]byte(nil), data[hdr:hdr+n]...)
			if b == nil {
				b = []byte{}
			}
			*p = b
			return nil
		}
	}
	if decodeScalar(data, v) {
		return nil
	}
	if _, err := valueLen(data); err != nil {
		return err
	}
	d := decoders.Get().(*decoder)
	d.r.Reset(data)
	d.r.ctx, d.r.data = ctx, data
	d.dec.Reset(&d.r)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("msgpack: %v", r)
		}
		d.r.Reset(nil)
		d.r.ctx, d.r.data = nil, nil
		decoders.Put(d)
	}()
	if p, ok := v.(*[]byte); ok && p != nil { // msgpack reads a *[]byte itself, past any registered decoder
		b, err := decodeBytes(d.dec)
		if err == nil {
			*p = b
		}
		return err
	}
	return fixPackedAny(d.dec, v, d.dec.Decode(prepareBulk(v))) // packed*.go: packed slices in an interface{}, named slices and arrays
}

// valueLen walks the msgpack value at the start of data, without decoding
// or allocating, and returns its length in bytes. It reports an error if
// the value is cut short or if an array or map declares more elements than
// the bytes left could hold.
//
// msgpack v5.4.0 and v5.4.1 ignore their own allocation limit when they
// decode an array into a typed slice (vmihailenco/msgpack#401): a 5-byte
// message that declares 2^32-1 elements makes them allocate tens of GiB
// and the process dies of it, which no recover can catch. As every element
// takes at least one byte, refusing any count larger than the bytes left
// bounds what a message can make the decoder allocate by its own size.
// Strings, binaries and extensions are skipped in O(1); bytes after the
// value are left alone, as the decoder leaves them.
//
// It also refuses values nested deeper than [MaxDepth]: the decoder
// recurses once a level, and a 1 MB message of nested one-element arrays
// would otherwise take the goroutine past its stack limit, which kills the
// process.
func valueLen(data []byte) (int, error) {
	pos, pending := 0, 1 // pending: values still to walk
	var stackBuf [32]int
	open := stackBuf[:0] // the values still to walk in each open array or map
	for pending > 0 {
		if len(open) > 0 {
			// A run of scalars in the innermost container (a slice of
			// numbers): skipped in one loop, all but its last element,
			// which closes the container the usual way.
			k, m := open[len(open)-1], 0
			for m < k-1 && pos < len(data) {
				w := int(scalarWidth[data[pos]])
				if w == 0 || w > len(data)-pos {
					break
				}
				pos += w
				m++
			}
			open[len(open)-1] -= m
			pending -= m
		}
		if pending > len(data)-pos {
			return 0, fmt.Errorf("msgpack: %d more values announced, %d bytes left", pending, len(data)-pos)
		}
		c := data[pos]
		pos++
		pending--
		var (
			size  int // fixed size of what follows the code
			lenSz int // size of a big-endian length that follows the code
			elems int // per element of that length: 0 bytes, 1 array, 2 map
			extra int // bytes after the length (the ext type)
		)
		children := 0 // values inside this one
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c <= 0x8f: // fixmap
			children = 2 * int(c&0x0f)
		case c <= 0x9f: // fixarray
			children = int(c & 0x0f)
		case c <= 0xbf: // fixstr
			size = int(c & 0x1f)
		case c == 0xc4 || c == 0xd9: // bin8, str8
			lenSz = 1
		case c == 0xc5 || c == 0xda: // bin16, str16
			lenSz = 2
		case c == 0xc6 || c == 0xdb: // bin32, str32
			lenSz = 4
		case c == 0xc7, c == 0xc8, c == 0xc9: // ext8, ext16, ext32
			lenSz, extra = 1<<(c-0xc7), 1
		case c == 0xca: // float32
			size = 4
		case c == 0xcb: // float64
			size = 8
		case c >= 0xcc && c <= 0xd3: // uint8…uint64, int8…int64
			size = 1 << ((c - 0xcc) % 4)
		case c >= 0xd4 && c <= 0xd8: // fixext1…fixext16
			size = 1 + 1<<(c-0xd4)
		case c == 0xdc || c == 0xde: // array16, map16
			lenSz, elems = 2, 1+int(c-0xdc)/2
		case c == 0xdd || c == 0xdf: // array32, map32
			lenSz, elems = 4, 1+int(c-0xdd)/2
		default: // 0xc1, never used
			return 0, fmt.Errorf("msgpack: invalid code 0x%02x", c)
		}
		if lenSz > 0 {
			if len(data)-pos < lenSz {
				return 0, fmt.Errorf("msgpack: unexpected EOF")
			}
			var n uint64
			for _, b := range data[pos : pos+lenSz] {
				n = n<<8 | uint64(b)
			}
			pos += lenSz
			left := uint64(len(data) - pos)
			switch {
			case elems == 0 && n > left:
				return 0, fmt.Errorf("msgpack: unexpected EOF")
			case elems == 0:
				size = extra + int(n)
			case n > left/uint64(elems): // before the sum, which could overflow
				return 0, fmt.Errorf("msgpack: %d elements announced, %d bytes left", n, left)
			default:
				children = elems * int(n)
			}
		}
		if size > len(data)-pos {
			return 0, fmt.Errorf("msgpack: unexpected EOF")
		}
		pos += size
		pending += children
		if children > 0 {
			if len(open) == MaxDepth {
				return 0, fmt.Errorf("msgpack: nested deeper than %d levels", MaxDepth)
			}
			open = append(open, children)
			continue
		}
		// A value ended, and with it every container it was the last of.
		for len(open) > 0 {
			open[len(open)-1]--
			if open[len(open)-1] > 0 {
				break
			}
			open = open[:len(open)-1]
		}
	}
	return pos, nil
}

// scalarWidth is, by msgpack code, the length of a value of fixed size
// with no values inside (numbers, nil, bools), code included; 0 for any
// other code.
var scalarWidth = func() (w [256]uint8) {
	for c := range 256 {
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
			w[c] = 1
		case c == 0xca:
			w[c] = 5
		case c == 0xcb:
			w[c] = 9
		case c >= 0xcc && c <= 0xd3:
			w[c] = 1 + 1<<((c-0xcc)%4)
		}
	}
	return w
}()

// MaxDepth is how deeply arrays, maps and structs may nest in a value that
// crosses the bus, both ways: deeper values (a long linked list, or a
// crafted message) are refused with an error rather than recursed into.
const MaxDepth = 2000

// checkTravel reports why values of type t cannot cross the bus, or nil.
// It walks the type for func, chan and unsafe pointers (which no codec can
// carry), then makes a codec round trip of the zero value. The zero value
// is encoded as a value, not through a pointer, as arguments and results
// are at run time: a type whose EncodeMsgpack has a pointer receiver cannot
// be encoded from a value, and must be refused here, not at the first call.
func checkTravel(t reflect.Type) error {
	if err := walkType(t, t.String(), map[reflect.Type]bool{}); err != nil {
		return err
	}
	data, err := Marshal(reflect.Zero(t).Interface())
	if err != nil {
		return err
	}
	back := reflect.New(t)
	if err := Unmarshal(data, back.Interface()); err != nil {
		return fmt.Errorf("%s: codec round trip: %v", t, err)
	}
	return nil
}

var (
	customEncoder = reflect.TypeFor[msgpack.CustomEncoder]()
	marshaler     = reflect.TypeFor[msgpack.Marshaler]()
)

func walkType(t reflect.Type, path string, seen map[reflect.Type]bool) error {
	if seen[t] {
		return nil
	}
	seen[t] = true
	if encodesItself(t) {
		return nil // the type encodes itself
	}
	switch t.Kind() {
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return fmt.Errorf("%s is a %s, which cannot be serialized", path, t.Kind())
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return walkType(t.Elem(), path+" element", seen)
	case reflect.Map:
		if err := walkType(t.Key(), path+" key", seen); err != nil {
			return err
		}
		return walkType(t.Elem(), path+" value", seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Tag.Get("msgpack") == "-" {
				continue
			}
			if err := walkType(f.Type, path+"."+f.Name+" ("+f.Type.String()+")", seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckTravel reports why values of type t cannot cross the bus, naming
// the field or element at fault, or nil when they can.
func CheckTravel(t reflect.Type) error { return checkTravel(t) }

// SplitArray appends to dst the raw msgpack values of the array at the
// start of data, without copying or decoding them, and returns dst. It
// fails on anything but a well-formed array.
func SplitArray(data []byte, dst [][]byte) ([][]byte, error) {
	if len(data) == 0 {
		return dst, fmt.Errorf("msgpack: want an array, got nothing")
	}
	var n, pos int
	switch c := data[0]; {
	case c&0xf0 == 0x90:
		n, pos = int(c&0x0f), 1
	case c == 0xdc && len(data) >= 3:
		n, pos = int(data[1])<<8|int(data[2]), 3
	case c == 0xdd && len(data) >= 5:
		n, pos = int(uint32(data[1])<<24|uint32(data[2])<<16|uint32(data[3])<<8|uint32(data[4])), 5
	default:
		return dst, fmt.Errorf("msgpack: want an array, got code 0x%02x", c)
	}
	if n > len(data)-pos {
		return dst, fmt.Errorf("msgpack: %d elements announced, %d bytes left", n, len(data)-pos)
	}
	for range n {
		l, err := valueLen(data[pos:])
		if err != nil {
			return dst, err
		}
		dst = append(dst, data[pos:pos+l])
		pos += l
	}
	return dst, nil
}

// DecodeString decodes the msgpack string that is the whole of raw.
func DecodeString(raw []byte) (string, error) {
	r := Reader{B: raw}
	s := r.Str("")
	if r.Err == nil && len(r.B) != 0 {
		r.Err = fmt.Errorf("%d bytes after the string", len(r.B))
	}
	if r.Err != nil {
		return "", fmt.Errorf("msgpack: %v", r.Err)
	}
	return s, nil
}

// DecodeScalar decodes raw, a msgpack integer, float, bool or string that
// is the whole of raw, into v, a settable value of a matching basic kind,
// with no reflection beyond v's kind and no allocation but a string's. It
// reports false, leaving v alone, for anything else, which the caller then
// decodes with Unmarshal. It ignores the decoders of named types: use it
// for predeclared types.
func DecodeScalar(raw []byte, v reflect.Value) bool {
	if len(raw) == 0 {
		return false
	}
	c := raw[0]
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x, ok := scalarInt(raw)
		if !ok || v.OverflowInt(x) {
			return false
		}
		v.SetInt(x)
		return true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		x, ok := scalarInt(raw)
		if !ok || x < 0 || v.OverflowUint(uint64(x)) {
			return false
		}
		v.SetUint(uint64(x))
		return true
	case reflect.Bool:
		if len(raw) == 1 && (c == 0xc2 || c == 0xc3) {
			v.SetBool(c == 0xc3)
			return true
		}
	case reflect.String:
		r := Reader{B: raw}
		s := r.Str("")
		if r.Err == nil && len(r.B) == 0 {
			v.SetString(s)
			return true
		}
	}
	return false
}

// scalarInt reads a msgpack integer that is the whole of raw, if it fits
// an int64.
func scalarInt(raw []byte) (int64, bool) {
	c := raw[0]
	switch {
	case c <= 0x7f && len(raw) == 1:
		return int64(c), true
	case c >= 0xe0 && len(raw) == 1:
		return int64(int8(c)), true
	case c >= 0xcc && c <= 0xcf: // uint8…uint64
		size := 1 << (c - 0xcc)
		if len(raw) != 1+size {
			return 0, false
		}
		var u uint64
		for _, b := range raw[1:] {
			u = u<<8 | uint64(b)
		}
		if u > 1<<63-1 {
			return 0, false
		}
		return int64(u), true
	case c >= 0xd0 && c <= 0xd3: // int8…int64
		size := 1 << (c - 0xd0)
		if len(raw) != 1+size {
			return 0, false
		}
		var u uint64
		for _, b := range raw[1:] {
			u = u<<8 | uint64(b)
		}
		shift := 64 - 8*size
		return int64(u<<shift) >> shift, true
	}
	return 0, false
}
