package bus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// ProtocolVersion is the version of the envelopes below. It is the first
// element of every envelope; an end that reads another version refuses the
// message with [ErrProtocolVersion] instead of guessing at its layout.
const ProtocolVersion = 3

// protocolOverride, when set at link time (-ldflags "-X
// github.com/processional/processional/bus.protocolOverride=N"), replaces
// the protocol version this binary speaks. It exists so that the e2e tests
// can build a real binary that speaks another version.
var protocolOverride string

var wireVersion = func() uint64 {
	if protocolOverride != "" {
		if v, err := strconv.ParseUint(protocolOverride, 10, 32); err == nil {
			return v
		}
	}
	return ProtocolVersion
}()

// Version is the protocol version this binary speaks: [ProtocolVersion]
// unless overridden at link time for tests.
func Version() uint64 { return wireVersion }

// Kind says what a call envelope asks of the worker.
type Kind uint8

const (
	// KindCall is a blocking call: the worker runs the calls of one master
	// in the order they were sent.
	KindCall Kind = iota
	// KindThread is a call the worker runs concurrently with any other.
	KindThread
	// KindCancel cancels the call whose ID it carries.
	KindCancel
	// KindClose asks the worker to finish the master's queued calls, then
	// to release it; a spawned worker then exits.
	KindClose
	// KindHeartbeat renews the master's lease on the worker for Timeout. It
	// travels on [HeartbeatSubject], so that it never waits behind calls,
	// and the worker acknowledges it on the reply subject it names.
	KindHeartbeat
	// KindDetach, from the worker's owner, makes the worker run the
	// owner's queued calls and then exit on its own; it no longer watches
	// the owner's lease or death. The worker acknowledges it at once.
	KindDetach
	// KindPersist, from the worker's owner, makes the worker outlive its
	// owner: it no longer watches the owner's lease or death, and serves
	// until it is closed or stopped. The worker acknowledges it at once.
	KindPersist
	kindEnd
)

// String names the kind, as it appears in error messages.
func (k Kind) String() string {
	switch k {
	case KindCall:
		return "call"
	case KindThread:
		return "thread"
	case KindCancel:
		return "cancel"
	case KindClose:
		return "close"
	case KindHeartbeat:
		return "heartbeat"
	case KindDetach:
		return "detach"
	case KindPersist:
		return "persist"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Call is the header of a call envelope. On the wire a call envelope is the
// msgpack array [version, kind, master, id, function, timeout, argType, pid,
// arg].
type Call struct {
	Kind     Kind
	Master   string        // the calling master's id
	ID       uint64        // the call's id, unique per master and worker
	Function string        // the registered function's name
	Timeout  time.Duration // time left before the caller's deadline when sent; 0 for none
	ArgType  string        // the Go type the caller encoded, for error messages
	// PID is the caller's process id when it shares the worker's shared
	// memory (the same shm.Domain): the worker may then send it
	// shared-memory buffers by reference. 0 otherwise.
	PID uint32
	Arg []byte // the msgpack-encoded argument (aliases the message)
}

const callFields = 9

// AppendCall appends the envelope of c, with arg encoded as its argument,
// to dst. c.Arg is ignored.
func AppendCall(dst []byte, c *Call, arg any) ([]byte, error) {
	return AppendCallWith(dst, c, arg, nil)
}

// AppendCallWith is AppendCall, encoding arg with [AppendValueWith] and
// codec.
func AppendCallWith(dst []byte, c *Call, arg any, codec any) ([]byte, error) {
	dst = append(dst, 0x90|callFields)
	dst = appendUint(dst, wireVersion)
	dst = appendUint(dst, uint64(c.Kind))
	dst = appendStr(dst, c.Master)
	dst = appendUint(dst, c.ID)
	dst = appendStr(dst, c.Function)
	dst = appendUint(dst, uint64(max(c.Timeout, 0)))
	dst = appendStr(dst, c.ArgType)
	dst = appendUint(dst, uint64(c.PID))
	return AppendValueWith(dst, arg, codec)
}

// DecodeCall reads a call envelope. c.Arg aliases data. A string field
// of c that already holds the value in data is kept, not allocated again:
// a receiver that decodes into the same Call each time allocates no
// strings for a stream of calls from one master to one function. Errors wrap
// [ErrProtocolVersion] or [ErrBadPayload].
func DecodeCall(data []byte, c *Call) error {
	r := reader{b: data}
	if err := r.header(callFields); err != nil {
		return err
	}
	k := r.uint()
	c.Kind = Kind(k)
	c.Master = r.str(c.Master)
	c.ID = r.uint()
	c.Function = r.str(c.Function)
	t := r.uint()
	c.ArgType = r.str(c.ArgType)
	pid := r.uint()
	if r.err != nil {
		return fmt.Errorf("%w: call envelope: %v", ErrBadPayload, r.err)
	}
	if k >= uint64(kindEnd) {
		return fmt.Errorf("%w: call envelope: unknown kind %d", ErrBadPayload, k)
	}
	if t > math.MaxInt64 {
		t = math.MaxInt64
	}
	c.Timeout = time.Duration(t)
	if pid > math.MaxUint32 {
		return fmt.Errorf("%w: call envelope: pid %d", ErrBadPayload, pid)
	}
	c.PID = uint32(pid)
	c.Arg = r.b
	if len(c.Arg) == 0 {
		return fmt.Errorf("%w: call envelope: no argument", ErrBadPayload)
	}
	return nil
}

// Reply status values.
const (
	statusOK    = 0
	statusError = 1
	replyFields = 4
)

// A reply carries the id of the call it answers, so that a master receives
// all the replies of one worker on one fixed subject ([ReplySubject]): the
// server's subject cache then hits on every reply, as it does for calls.

// AppendReply appends a reply to call id carrying result: the msgpack
// array [version, 0, id, result].
func AppendReply(dst []byte, id uint64, result any) ([]byte, error) {
	return AppendReplyWith(dst, id, result, nil)
}

// AppendReplyWith is AppendReply, encoding result with [AppendValueWith]
// and codec.
func AppendReplyWith(dst []byte, id uint64, result any, codec any) ([]byte, error) {
	dst = append(dst, 0x90|replyFields)
	dst = appendUint(dst, wireVersion)
	dst = appendUint(dst, statusOK)
	dst = appendUint(dst, id)
	return AppendValueWith(dst, result, codec)
}

// AppendErrorReply appends a reply to call id carrying e: the msgpack
// array [version, 1, id, error]. id is 0 when the call's id is unknown
// (its envelope did not decode).
func AppendErrorReply(dst []byte, id uint64, e *RemoteError) []byte {
	dst = append(dst, 0x90|replyFields)
	dst = appendUint(dst, wireVersion)
	dst = appendUint(dst, statusError)
	dst = appendUint(dst, id)
	out, err := AppendValue(dst, e)
	if err != nil { // a RemoteError is strings only: this cannot fail
		panic(err)
	}
	return out
}

// DecodeReply reads a reply envelope. It returns the id of the call it
// answers and either the encoded result (aliasing data) or the remote error
// the worker sent; or an error wrapping [ErrProtocolVersion] or
// [ErrBadPayload] when data is not a reply this binary understands.
func DecodeReply(data []byte) (id uint64, result []byte, remote *RemoteError, err error) {
	r := reader{b: data}
	if err := r.header(replyFields); err != nil {
		return 0, nil, nil, err
	}
	status := r.uint()
	id = r.uint()
	if r.err != nil {
		return 0, nil, nil, fmt.Errorf("%w: reply envelope: %v", ErrBadPayload, r.err)
	}
	switch status {
	case statusOK:
		if len(r.b) == 0 {
			return id, nil, nil, fmt.Errorf("%w: reply envelope: no result", ErrBadPayload)
		}
		return id, r.b, nil, nil
	case statusError:
		re := new(RemoteError)
		if err := Unmarshal(r.b, re); err != nil {
			return id, nil, nil, fmt.Errorf("%w: error envelope: %v", ErrBadPayload, err)
		}
		return id, nil, re, nil
	}
	return id, nil, nil, fmt.Errorf("%w: reply envelope: unknown status %d", ErrBadPayload, status)
}

// msgpack primitives for envelope headers, written by hand: they are on
// every call's path and need neither reflection nor allocation.

func appendUint(b []byte, v uint64) []byte {
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

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

var errShort = errors.New("truncated")

type reader struct {
	b   []byte
	err error
}

// header reads the array header and the version of an envelope of n fields.
func (r *reader) header(n int) error {
	if len(r.b) == 0 {
		return fmt.Errorf("%w: empty message", ErrBadPayload)
	}
	c := r.b[0]
	if c&0xf0 != 0x90 {
		return fmt.Errorf("%w: not a processional envelope (first byte 0x%02x)", ErrBadPayload, c)
	}
	r.b = r.b[1:]
	v := r.uint()
	if r.err != nil {
		return fmt.Errorf("%w: envelope version: %v", ErrBadPayload, r.err)
	}
	if v != wireVersion {
		return fmt.Errorf("%w: the message speaks protocol %d, this binary speaks %d: build both ends from the same processional version", ErrProtocolVersion, v, wireVersion)
	}
	if int(c&0x0f) != n {
		return fmt.Errorf("%w: envelope of %d fields, want %d", ErrBadPayload, c&0x0f, n)
	}
	return nil
}

func (r *reader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errShort
		return 0
	}
	c := r.b[0]
	var size int
	switch {
	case c < 0x80:
		r.b = r.b[1:]
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
		r.err = fmt.Errorf("want an unsigned integer, got code 0x%02x", c)
		return 0
	}
	if len(r.b) < 1+size {
		r.err = errShort
		return 0
	}
	var v uint64
	for _, x := range r.b[1 : 1+size] {
		v = v<<8 | uint64(x)
	}
	r.b = r.b[1+size:]
	return v
}

// str reads a string; it returns prev when the bytes spell it, so as not
// to allocate.
func (r *reader) str(prev string) string {
	b := r.strBytes()
	if b == nil {
		return ""
	}
	if string(b) == prev {
		return prev
	}
	return string(b)
}

// skipStr passes over a string.
func (r *reader) skipStr() { r.strBytes() }

// strBytes reads a string's bytes, in place; nil after an error.
func (r *reader) strBytes() []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) == 0 {
		r.err = errShort
		return nil
	}
	c := r.b[0]
	var n, hdr int
	switch {
	case c&0xe0 == 0xa0:
		n, hdr = int(c&0x1f), 1
	case c == 0xd9 && len(r.b) >= 2:
		n, hdr = int(r.b[1]), 2
	case c == 0xda && len(r.b) >= 3:
		n, hdr = int(binary.BigEndian.Uint16(r.b[1:])), 3
	case c == 0xdb && len(r.b) >= 5:
		n, hdr = int(binary.BigEndian.Uint32(r.b[1:])), 5
	default:
		r.err = fmt.Errorf("want a string, got code 0x%02x", c)
		return nil
	}
	if n < 0 || len(r.b) < hdr+n {
		r.err = errShort
		return nil
	}
	b := r.b[hdr : hdr+n : hdr+n]
	r.b = r.b[hdr+n:]
	return b
}

// Chunks. A call or a reply larger than the server's max payload travels
// as a sequence of chunk envelopes on the same subject, each at most a
// max payload, joined by the receiver and then handled as the whole
// message:
//
//	call chunk:  [version, 255, master, id, index, count, total, data]
//	reply chunk: [version, 255, id, index, count, total, data]
//
// total is the whole message's size, so that the receiver refuses an
// oversized stream at its first chunk and allocates it once. Flow control:
// the sender asks for an acknowledgement (a request) on every few chunks
// and on the last, and waits for it before sending more.
const chunkMark = 255

// Chunk is one piece of a message split into chunks.
type Chunk struct {
	Master string // the calling master, for a call's chunk; empty for a reply's
	ID     uint64 // the call's id
	Index  uint32 // the chunk's position, from 0
	Count  uint32 // how many chunks the message has
	Total  uint64 // the whole message's size in bytes
	Data   []byte // the chunk's bytes (aliases the message)
}

const (
	callChunkFields  = 8
	replyChunkFields = 7
)

// AppendCallChunk appends the envelope of a call's chunk.
func AppendCallChunk(dst []byte, c *Chunk) []byte {
	dst = append(dst, 0x90|callChunkFields)
	dst = appendUint(dst, wireVersion)
	dst = appendUint(dst, chunkMark)
	dst = appendStr(dst, c.Master)
	return appendChunkTail(dst, c)
}

// AppendReplyChunk appends the envelope of a reply's chunk.
func AppendReplyChunk(dst []byte, c *Chunk) []byte {
	dst = append(dst, 0x90|replyChunkFields)
	dst = appendUint(dst, wireVersion)
	dst = appendUint(dst, chunkMark)
	return appendChunkTail(dst, c)
}

func appendChunkTail(dst []byte, c *Chunk) []byte {
	dst = appendUint(dst, c.ID)
	dst = appendUint(dst, uint64(c.Index))
	dst = appendUint(dst, uint64(c.Count))
	dst = appendUint(dst, c.Total)
	n := len(c.Data)
	dst = binary.BigEndian.AppendUint32(append(dst, 0xc6), uint32(n))
	return append(dst, c.Data...)
}

// IsCallChunk reports whether data is a call's chunk envelope (of any
// protocol version: DecodeCallChunk says which).
func IsCallChunk(data []byte) bool { return isChunk(data, callChunkFields) }

// IsReplyChunk reports whether data is a reply's chunk envelope.
func IsReplyChunk(data []byte) bool { return isChunk(data, replyChunkFields) }

func isChunk(data []byte, fields byte) bool {
	if len(data) < 4 || data[0] != 0x90|fields {
		return false
	}
	r := reader{b: data[1:]}
	r.uint() // the version
	return r.err == nil && len(r.b) >= 2 && r.b[0] == 0xcc && r.b[1] == chunkMark
}

// DecodeCallChunk reads a call's chunk envelope; c.Data aliases data.
func DecodeCallChunk(data []byte, c *Chunk) error {
	r := reader{b: data}
	if err := r.header(callChunkFields); err != nil {
		return err
	}
	if r.uint() != chunkMark {
		return fmt.Errorf("%w: not a chunk", ErrBadPayload)
	}
	c.Master = r.str(c.Master)
	return decodeChunkTail(&r, c)
}

// DecodeReplyChunk reads a reply's chunk envelope; c.Data aliases data.
func DecodeReplyChunk(data []byte, c *Chunk) error {
	r := reader{b: data}
	if err := r.header(replyChunkFields); err != nil {
		return err
	}
	if r.uint() != chunkMark {
		return fmt.Errorf("%w: not a chunk", ErrBadPayload)
	}
	c.Master = ""
	return decodeChunkTail(&r, c)
}

func decodeChunkTail(r *reader, c *Chunk) error {
	c.ID = r.uint()
	index, count := r.uint(), r.uint()
	c.Total = r.uint()
	if r.err == nil && (len(r.b) < 5 || r.b[0] != 0xc6) {
		r.err = fmt.Errorf("want a bin32 of data")
	}
	if r.err != nil {
		return fmt.Errorf("%w: chunk envelope: %v", ErrBadPayload, r.err)
	}
	n := binary.BigEndian.Uint32(r.b[1:])
	if uint64(len(r.b)-5) != uint64(n) {
		return fmt.Errorf("%w: chunk envelope: %d bytes of data announced, %d sent", ErrBadPayload, n, len(r.b)-5)
	}
	if count == 0 || index >= count || count > math.MaxUint32 {
		return fmt.Errorf("%w: chunk %d of %d", ErrBadPayload, index, count)
	}
	c.Index, c.Count, c.Data = uint32(index), uint32(count), r.b[5:]
	return nil
}
