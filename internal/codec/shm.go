package codec

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/internal/registry"
	"github.com/processional/processional/shm"
)

// Shared-memory buffers. A *shm.Buffer inside an argument or a result
// travels as a msgpack extension of type [ShmExtType] whose data is the
// array [segment, offset, length, nonce] when the receiver shares this
// process's /dev/shm, so that it maps the same memory; otherwise as a
// msgpack bin of its bytes, which the receiver decodes into a Buffer in
// ordinary memory.

// ShmExtType is the msgpack extension type of a shared-memory buffer.
const ShmExtType int8 = 2

// ShmReceiver is what the context given to [AppendValueWith] offers a
// buffer being encoded: the process id of the receiver when it shares this
// process's /dev/shm, 0 when it does not (the buffer is then copied).
type ShmReceiver interface {
	ShmReceiver() int
}

// ShmSender, when the context given to [AppendValueWith] offers it, is
// told of each buffer the value refers to by reference (a transit for
// the receiver): a message that fails to go must drop those transits.
type ShmSender interface {
	SentShm()
}

var bufferType = reflect.TypeFor[*shm.Buffer]()

func init() {
	msgpack.Register((*shm.Buffer)(nil), encodeBuffer, decodeBuffer)
	// The shared-memory errors survive the trip, for errors.Is.
	registry.RegisterError("shm.ErrClosed", shm.ErrClosed)
	registry.RegisterError("shm.ErrNoSegment", shm.ErrNoSegment)
	registry.RegisterError("shm.ErrRange", shm.ErrRange)
	registry.RegisterError("shm.ErrFull", shm.ErrFull)
}

func encodeBuffer(enc *msgpack.Encoder, v reflect.Value) error {
	if v.IsNil() {
		return enc.EncodeNil()
	}
	b := v.Interface().(*shm.Buffer)
	if b.Bytes() == nil && b.Len() > 0 {
		return fmt.Errorf("%w: %s", shm.ErrClosed, b)
	}
	pid := 0
	if r, ok := EncoderContext(enc).(ShmReceiver); ok {
		pid = r.ShmReceiver()
	}
	name, off, n, shared := b.Ref()
	if pid != 0 && shared {
		nonce, err := b.Transit(pid)
		if err == nil {
			if s, ok := EncoderContext(enc).(ShmSender); ok {
				s.SentShm()
			}
			var buf [96]byte
			body := append(buf[:0], 0x94)
			body = AppendStr(body, name)
			body = AppendUint(body, uint64(off))
			body = AppendUint(body, uint64(n))
			body = AppendUint(body, nonce)
			if err := enc.EncodeExtHeader(ShmExtType, len(body)); err != nil {
				return err
			}
			_, err := enc.Writer().Write(body)
			return err
		}
		if !errors.Is(err, shm.ErrFull) {
			return err
		}
		// A segment with no free holder slot: copy it.
	}
	return enc.EncodeBytes(b.Bytes())
}

func decodeBuffer(dec *msgpack.Decoder, v reflect.Value) error {
	code, err := dec.PeekCode()
	if err != nil {
		return err
	}
	switch {
	case code == 0xc0:
		if err := dec.DecodeNil(); err != nil {
			return err
		}
		v.Set(reflect.Zero(bufferType))
		return nil
	case code == 0xc4 || code == 0xc5 || code == 0xc6: // bin: a copy
		b, err := dec.DecodeBytes()
		if err != nil {
			return err
		}
		if b == nil {
			b = []byte{}
		}
		v.Set(reflect.ValueOf(shm.FromBytes(b)))
		return nil
	}
	id, n, err := dec.DecodeExtHeader()
	if err != nil {
		return fmt.Errorf("a shared-memory buffer: %w", err)
	}
	if id != ShmExtType || n > 256 {
		return fmt.Errorf("%w: want a shared-memory buffer (extension %d), got extension %d of %d bytes", registry.ErrBadPayload, ShmExtType, id, n)
	}
	var buf [256]byte
	body := buf[:n]
	if err := dec.ReadFull(body); err != nil {
		return err
	}
	r := Reader{B: body}
	if len(r.B) == 0 || r.B[0] != 0x94 {
		return fmt.Errorf("%w: a shared-memory buffer: not a 4-element array", registry.ErrBadPayload)
	}
	r.B = r.B[1:]
	name := r.Str("")
	off, length, nonce := r.Uint(), r.Uint(), r.Uint()
	if r.Err != nil {
		return fmt.Errorf("%w: a shared-memory buffer: %v", registry.ErrBadPayload, r.Err)
	}
	const maxInt = int(^uint(0) >> 1)
	if off > uint64(maxInt) || length > uint64(maxInt) {
		return fmt.Errorf("%w: a shared-memory buffer of %d bytes at %d", shm.ErrRange, length, off)
	}
	b, err := shm.Open(name, int(off), int(length), nonce)
	if err != nil {
		return err
	}
	v.Set(reflect.ValueOf(b))
	return nil
}

// DropTransits clears the transit slots of the shared-memory buffers that
// the encoded value raw refers to: a message this process was sent and
// will never decode (a call cancelled before it ran, a result nobody
// read), so that their segments do not wait for this process to die. A
// value in a transient segment is let go of whole.
func DropTransits(raw []byte) {
	walkExts(raw, func(typ int8, body []byte) {
		if typ == TransientExtType {
			dropTransient(body)
			return
		}
		if name, nonce, ok := bufferTransit(typ, body); ok {
			shm.DropTransit(name, nonce)
		}
	})
}

// bufferTransit returns the segment and the transit nonce of the
// extension typ, body when it is a shared-memory buffer's.
func bufferTransit(typ int8, body []byte) (name string, nonce uint64, ok bool) {
	r := Reader{B: body}
	if typ != ShmExtType || len(r.B) == 0 || r.B[0] != 0x94 {
		return "", 0, false
	}
	r.B = r.B[1:]
	name = r.Str("")
	r.Uint()
	r.Uint()
	nonce = r.Uint()
	return name, nonce, r.Err == nil
}

// CancelTransits clears the transits this process set for the
// shared-memory buffers and transient segments that the encoded value
// raw refers to, a message it made and could not send: their segments
// need not wait for the receiver to die.
func CancelTransits(raw []byte) {
	walkExts(raw, func(typ int8, body []byte) {
		if typ == TransientExtType {
			cancelTransient(body)
		} else if name, nonce, ok := bufferTransit(typ, body); ok {
			shm.CancelTransit(name, nonce)
		}
	})
}

// HasShm reports whether the encoded value raw holds a shared-memory
// buffer by reference, or is in a transient segment.
func HasShm(raw []byte) bool {
	found := false
	walkExts(raw, func(typ int8, _ []byte) { found = found || typ == ShmExtType || typ == TransientExtType })
	return found
}

// walkExts calls fn for each extension in the msgpack values of data.
func walkExts(data []byte, fn func(typ int8, body []byte)) {
	for pos := 0; pos < len(data); {
		c := data[pos]
		var hdr, n int
		switch {
		case c >= 0xd4 && c <= 0xd8:
			hdr, n = 2, 1<<(c-0xd4)
		case c == 0xc7:
			if pos+2 >= len(data) {
				return
			}
			hdr, n = 3, int(data[pos+1])
		case c == 0xc8:
			if pos+3 >= len(data) {
				return
			}
			hdr, n = 4, int(data[pos+1])<<8|int(data[pos+2])
		case c == 0xc9:
			if pos+5 >= len(data) {
				return
			}
			hdr, n = 6, int(uint32(data[pos+1])<<24|uint32(data[pos+2])<<16|uint32(data[pos+3])<<8|uint32(data[pos+4]))
		default:
			// Not an extension: step over its header, into arrays and
			// maps, and over the whole of strings and binaries.
			l, err := scalarLen(data[pos:])
			if err != nil {
				return
			}
			pos += l
			continue
		}
		if pos+hdr+n > len(data) || pos+hdr-1 >= len(data) {
			return
		}
		fn(int8(data[pos+hdr-1]), data[pos+hdr:pos+hdr+n])
		pos += hdr + n
	}
}

// scalarLen is the length of the value at the start of data, but of the
// header only for an array or a map: their elements follow it.
func scalarLen(data []byte) (int, error) {
	c := data[0]
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return 1, nil
	case c <= 0x9f: // fixmap, fixarray
		return 1, nil
	case c == 0xdc || c == 0xde:
		return 3, nil
	case c == 0xdd || c == 0xdf:
		return 5, nil
	}
	return valueLen(data)
}
