package bus

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// The value codec is msgpack (github.com/vmihailenco/msgpack/v5) with its
// defaults: structs travel as maps keyed by field name (the `msgpack` tag
// renames a field), so that two binaries whose structs differ by a field
// still understand each other.

// appendWriter is the io.Writer and io.ByteWriter msgpack writes into.
type appendWriter struct{ b []byte }

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
	r   bytes.Reader
	dec *msgpack.Decoder
}

var decoders = sync.Pool{New: func() any {
	d := &decoder{}
	d.dec = msgpack.NewDecoder(&d.r)
	return d
}}

// AppendValue appends the msgpack encoding of v to dst. A value that cannot
// be encoded gives an error wrapping [ErrEncode] that names its type.
func AppendValue(dst []byte, v any) (out []byte, err error) {
	e := encoders.Get().(*encoder)
	e.w.b = dst
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %T: %v", ErrEncode, v, r)
		}
		e.w.b = nil
		encoders.Put(e)
	}()
	if err := e.enc.Encode(v); err != nil {
		return dst, fmt.Errorf("%w: %T: %v", ErrEncode, v, err)
	}
	return e.w.b, nil
}

// Marshal returns the msgpack encoding of v.
func Marshal(v any) ([]byte, error) { return AppendValue(nil, v) }

// Unmarshal decodes the msgpack value in data into v, a non-nil pointer.
// Decoding never panics: a malformed payload is an error.
func Unmarshal(data []byte, v any) (err error) {
	d := decoders.Get().(*decoder)
	d.r.Reset(data)
	d.dec.Reset(&d.r)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("msgpack: %v", r)
		}
		d.r.Reset(nil)
		decoders.Put(d)
	}()
	return d.dec.Decode(v)
}

// checkTravel reports why values of type t cannot cross the bus, or nil.
// It walks the type for func, chan and unsafe pointers (which no codec can
// carry), then makes a codec round trip of the zero value.
func checkTravel(t reflect.Type) error {
	if err := walkType(t, t.String(), map[reflect.Type]bool{}); err != nil {
		return err
	}
	zero := reflect.New(t)
	data, err := Marshal(zero.Interface())
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
	if t.Implements(customEncoder) || t.Implements(marshaler) ||
		reflect.PointerTo(t).Implements(customEncoder) || reflect.PointerTo(t).Implements(marshaler) {
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
