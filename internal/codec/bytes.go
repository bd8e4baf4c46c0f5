package codec

import (
	"fmt"
	"io"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/internal/registry"
)

// Byte slices decode by one copy into memory that is not zeroed first:
// msgpack makes the slice (zeroing it: for a big value, a pass over
// memory that may be new to the process, whose first touch of each page
// is what costs) and then reads into it. Here the bytes are appended to
// a nil slice, which the runtime allocates without zeroing what the copy
// overwrites. The bytes are the same; msgpack's own reading serves any
// reader but the codec's.
func init() {
	msgpack.Register([]byte(nil),
		func(e *msgpack.Encoder, v reflect.Value) error { return e.EncodeBytes(v.Bytes()) },
		func(d *msgpack.Decoder, v reflect.Value) error {
			b, err := decodeBytes(d)
			if err == nil {
				v.SetBytes(b)
			}
			return err
		})
}

// decodeBytes reads a msgpack bin or str (or nil) into a new slice; in
// place, from the codec's own reader.
func decodeBytes(d *msgpack.Decoder) ([]byte, error) {
	r, ok := d.Buffered().(*ctxReader)
	if !ok || r.data == nil {
		return d.DecodeBytes()
	}
	p := r.data[len(r.data)-r.Len():]
	n, hdr, ok := binHeader(p)
	if !ok {
		return d.DecodeBytes() // nil, or a form msgpack reads
	}
	if n > len(p)-hdr {
		return nil, fmt.Errorf("%w: a binary of %d bytes, %d left", registry.ErrBadPayload, n, len(p)-hdr)
	}
	b := append([]byte(nil), p[hdr:hdr+n]...)
	if b == nil {
		b = []byte{}
	}
	if _, err := r.Seek(int64(len(r.data)-len(p)+hdr+n), io.SeekStart); err != nil {
		return nil, err
	}
	return b, nil
}

// binHeader reads the header of the msgpack bin or str at the start of p:
// its length and the header's.
func binHeader(p []byte) (n, hdr int, ok bool) {
	if len(p) == 0 {
		return 0, 0, false
	}
	switch c := p[0]; {
	case c >= 0xa0 && c <= 0xbf:
		return int(c & 0x1f), 1, true
	case (c == 0xc4 || c == 0xd9) && len(p) >= 2:
		return int(p[1]), 2, true
	case (c == 0xc5 || c == 0xda) && len(p) >= 3:
		return int(p[1])<<8 | int(p[2]), 3, true
	case (c == 0xc6 || c == 0xdb) && len(p) >= 5:
		return int(uint32(p[1])<<24 | uint32(p[2])<<16 | uint32(p[3])<<8 | uint32(p[4])), 5, true
	}
	return 0, 0, false
}
