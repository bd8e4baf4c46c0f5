package wire

import (
	"fmt"

	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/registry"
	"github.com/vmihailenco/msgpack/v5"
)

// Remote objects. A worker holds objects in a table, by id; a master holds
// references to them. On the wire a reference is a msgpack extension of
// type [RefExtType] whose data is the msgpack array
// [worker, id, type, secret], or [worker, id, type, secret, holder] for a
// reference a holder passes on.

// RefExtType is the msgpack extension type of an [ObjectRef].
const RefExtType int8 = 1

// ObjectRef names an object a worker holds: the worker's id, the object's
// id in the worker's table, and the object's Go type for messages. It is
// how a reference travels; the master's Ref wraps it. A reference a master
// passes on in a call names that master as its Holder: the receiver may
// acquire a reference of its own only while the Holder holds one.
//
// Secret is a random number the worker drew for the object: the worker
// takes no reference that does not carry it. Ids and holders are no
// secrets (a worker lists them); the secret travels only in the replies
// that hand a reference out and in the calls that use or pass it on.
type ObjectRef struct {
	Worker string
	ID     uint64
	Type   string
	Secret uint64
	Holder string // the master passing the reference on; empty otherwise
}

// String describes the reference, as "*main.Counter 3 on worker w-…".
func (r ObjectRef) String() string {
	return fmt.Sprintf("%s %d on worker %s", r.Type, r.ID, r.Worker)
}

// AppendRef appends the extension encoding r.
func AppendRef(dst []byte, r ObjectRef) []byte {
	var body [176]byte
	b := append(body[:0], 0x94)
	if r.Holder != "" {
		b[0] = 0x95
	}
	b = codec.AppendStr(b, r.Worker)
	b = codec.AppendUint(b, r.ID)
	b = codec.AppendStr(b, r.Type)
	b = codec.AppendUint(b, r.Secret)
	if r.Holder != "" {
		b = codec.AppendStr(b, r.Holder)
	}
	switch n := len(b); {
	case n <= 0xff:
		dst = append(dst, 0xc7, byte(n), byte(RefExtType))
	case n <= 0xffff:
		dst = append(dst, 0xc8, byte(n>>8), byte(n), byte(RefExtType))
	default:
		dst = append(dst, 0xc9, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), byte(RefExtType))
	}
	return append(dst, b...)
}

// EncodeMsgpack writes r as the reference extension.
func (r ObjectRef) EncodeMsgpack(enc *msgpack.Encoder) error {
	_, err := enc.Writer().Write(AppendRef(nil, r))
	return err
}

// DecodeMsgpack reads the reference extension into r.
func (r *ObjectRef) DecodeMsgpack(dec *msgpack.Decoder) error {
	id, n, err := dec.DecodeExtHeader()
	if err != nil {
		return err
	}
	if id != RefExtType {
		return fmt.Errorf("%w: want a reference (extension %d), got extension %d", registry.ErrBadPayload, RefExtType, id)
	}
	*r, err = ReadRefBody(dec, n)
	return err
}

// ReadRefBody reads a reference from the n bytes of data of its extension,
// whose header dec has read: for msgpack.RegisterExtDecoder.
func ReadRefBody(dec *msgpack.Decoder, n int) (ObjectRef, error) {
	var r ObjectRef
	if n > 1<<16 {
		return r, fmt.Errorf("%w: reference of %d bytes", registry.ErrBadPayload, n)
	}
	body := make([]byte, n)
	if err := dec.ReadFull(body); err != nil {
		return r, err
	}
	return r, r.decodeBody(body)
}

func (r *ObjectRef) decodeBody(body []byte) error {
	rd := codec.Reader{B: body}
	if len(rd.B) == 0 || rd.B[0] != 0x94 && rd.B[0] != 0x95 {
		return fmt.Errorf("%w: reference: not a 4- or 5-element array", registry.ErrBadPayload)
	}
	withHolder := rd.B[0] == 0x95
	rd.B = rd.B[1:]
	r.Worker = rd.Str(r.Worker)
	r.ID = rd.Uint()
	r.Type = rd.Str(r.Type)
	r.Secret = rd.Uint()
	r.Holder = ""
	if withHolder {
		r.Holder = rd.Str(r.Holder)
	}
	if rd.Err != nil {
		return fmt.Errorf("%w: reference: %v", registry.ErrBadPayload, rd.Err)
	}
	if !ValidID(r.Worker) {
		return fmt.Errorf("%w: reference: worker id %q", registry.ErrBadPayload, r.Worker)
	}
	if withHolder && !ValidID(r.Holder) {
		return fmt.Errorf("%w: reference: holder id %q", registry.ErrBadPayload, r.Holder)
	}
	return nil
}

// IsRef reports whether the msgpack value at the start of raw is a
// reference extension.
func IsRef(raw []byte) bool {
	switch {
	case len(raw) >= 2 && raw[0] >= 0xd4 && raw[0] <= 0xd8: // fixext
		return int8(raw[1]) == RefExtType
	case len(raw) >= 3 && raw[0] == 0xc7:
		return int8(raw[2]) == RefExtType
	case len(raw) >= 4 && raw[0] == 0xc8:
		return int8(raw[3]) == RefExtType
	case len(raw) >= 6 && raw[0] == 0xc9:
		return int8(raw[5]) == RefExtType
	}
	return false
}

// DecodeRef reads the reference extension at the start of raw.
func DecodeRef(raw []byte) (ObjectRef, error) {
	var r ObjectRef
	if !IsRef(raw) {
		return r, fmt.Errorf("%w: not a reference", registry.ErrBadPayload)
	}
	var hdr, n int
	switch raw[0] {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		hdr, n = 2, 1<<(raw[0]-0xd4)
	case 0xc7:
		hdr, n = 3, int(raw[1])
	case 0xc8:
		hdr, n = 4, int(raw[1])<<8|int(raw[2])
	default:
		hdr, n = 6, int(raw[1])<<24|int(raw[2])<<16|int(raw[3])<<8|int(raw[4])
	}
	if n < 0 || len(raw)-hdr < n {
		return r, fmt.Errorf("%w: reference cut short", registry.ErrBadPayload)
	}
	return r, r.decodeBody(raw[hdr : hdr+n])
}

// RefID returns the id of the object the reference at the start of raw
// names, which must be an object of worker; it allocates nothing. A
// reference to another worker's object is an error that names both.
func RefID(raw []byte, worker string) (id, secret uint64, err error) {
	var hdr, n int
	switch {
	case !IsRef(raw):
		return 0, 0, fmt.Errorf("%w: not a reference", registry.ErrBadPayload)
	case raw[0] >= 0xd4 && raw[0] <= 0xd8:
		hdr, n = 2, 1<<(raw[0]-0xd4)
	case raw[0] == 0xc7:
		hdr, n = 3, int(raw[1])
	case raw[0] == 0xc8:
		hdr, n = 4, int(raw[1])<<8|int(raw[2])
	default:
		hdr, n = 6, int(raw[1])<<24|int(raw[2])<<16|int(raw[3])<<8|int(raw[4])
	}
	if n < 0 || len(raw)-hdr < n {
		return 0, 0, fmt.Errorf("%w: reference cut short", registry.ErrBadPayload)
	}
	rd := codec.Reader{B: raw[hdr : hdr+n]}
	if len(rd.B) == 0 || rd.B[0] != 0x94 && rd.B[0] != 0x95 {
		return 0, 0, fmt.Errorf("%w: reference: not a 4- or 5-element array", registry.ErrBadPayload)
	}
	rd.B = rd.B[1:]
	w := rd.Str(worker)
	id = rd.Uint()
	rd.SkipStr() // the type
	secret = rd.Uint()
	if rd.Err != nil {
		return 0, 0, fmt.Errorf("%w: reference: %v", registry.ErrBadPayload, rd.Err)
	}
	if w != worker {
		return 0, 0, fmt.Errorf("%w: object %d on worker %s was sent to worker %s", registry.ErrBadPayload, id, w, worker)
	}
	return id, secret, nil
}

// MaxArgs is the most arguments a method call through a reference may
// have: a call with more is refused before it is sent, and by the worker.
const MaxArgs = 1024
