package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/registry"
)

// ProtocolVersion is the version of the envelopes below. It is the first
// element of every envelope; an end that reads another version refuses the
// message with [ErrProtocolVersion] instead of guessing at its layout.
// 5: a worker's epoch names its process in its high half (heartbeat
// answers and the hello); an end of 4 would take it for a reconnect.
// 6: calls and replies travel in batches (see [Batch]), which an end of 5
// would refuse as garbage.
const ProtocolVersion = 6

// protocolOverride, when set at link time (-ldflags "-X
// github.com/processional/processional/internal/wire.protocolOverride=N"), replaces
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
	// KindStream starts a stream (bus.RegisterStream), concurrently with
	// any other call: its items come back as item replies, in order, each
	// sent once the master has granted credit for it (KindCredit); its end
	// is a reply as a call's.
	KindStream
	// KindCredit grants the stream whose ID it carries more items: its
	// argument is [items, bytes], items more (those the master consumed),
	// and, when bytes is not 0, the most bytes of items in flight.
	KindCredit
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
	case KindStream:
		return "stream"
	case KindCredit:
		return "credit"
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
func AppendCallWith(dst []byte, c *Call, arg any, cctx any) ([]byte, error) {
	dst = append(dst, 0x90|callFields)
	dst = codec.AppendUint(dst, wireVersion)
	dst = codec.AppendUint(dst, uint64(c.Kind))
	dst = codec.AppendStr(dst, c.Master)
	dst = codec.AppendUint(dst, c.ID)
	dst = codec.AppendStr(dst, c.Function)
	dst = codec.AppendUint(dst, uint64(max(c.Timeout, 0)))
	dst = codec.AppendStr(dst, c.ArgType)
	dst = codec.AppendUint(dst, uint64(c.PID))
	return codec.AppendValueWith(dst, arg, cctx)
}

// DecodeCall reads a call envelope. c.Arg aliases data. A string field
// of c that already holds the value in data is kept, not allocated again:
// a receiver that decodes into the same Call each time allocates no
// strings for a stream of calls from one master to one function. Errors wrap
// [ErrProtocolVersion] or [ErrBadPayload].
func DecodeCall(data []byte, c *Call) error {
	r := codec.Reader{B: data}
	if err := header(&r, callFields); err != nil {
		return err
	}
	k := r.Uint()
	c.Kind = Kind(k)
	c.Master = r.Str(c.Master)
	c.ID = r.Uint()
	c.Function = r.Str(c.Function)
	t := r.Uint()
	c.ArgType = r.Str(c.ArgType)
	pid := r.Uint()
	if r.Err != nil {
		return fmt.Errorf("%w: call envelope: %v", registry.ErrBadPayload, r.Err)
	}
	if k >= uint64(kindEnd) {
		return fmt.Errorf("%w: call envelope: unknown kind %d", registry.ErrBadPayload, k)
	}
	if t > math.MaxInt64 {
		t = math.MaxInt64
	}
	c.Timeout = time.Duration(t)
	if pid > math.MaxUint32 {
		return fmt.Errorf("%w: call envelope: pid %d", registry.ErrBadPayload, pid)
	}
	c.PID = uint32(pid)
	c.Arg = r.B
	if len(c.Arg) == 0 {
		return fmt.Errorf("%w: call envelope: no argument", registry.ErrBadPayload)
	}
	return nil
}

// Status says what a reply envelope carries.
type Status uint8

// Reply status values.
const (
	StatusOK    Status = 0 // a call's result, or a stream's end
	StatusError Status = 1 // a call's or a stream's error
	StatusItem  Status = 2 // one item of a stream, which goes on
	// StatusProgress is the latest progress a running call or stream
	// reported (bus.Progress): it goes on.
	StatusProgress Status = 3
	replyFields           = 4
)

const (
	statusOK    = uint64(StatusOK)
	statusError = uint64(StatusError)
	statusItem  = uint64(StatusItem)
)

// AppendProgress appends a progress report of call id: the msgpack
// array [version, 3, id, value].
func AppendProgress(dst []byte, id uint64, value any) ([]byte, error) {
	return appendReply(dst, uint64(StatusProgress), id, value, nil)
}

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
func AppendReplyWith(dst []byte, id uint64, result any, cctx any) ([]byte, error) {
	return appendReply(dst, statusOK, id, result, cctx)
}

// appendReply appends the reply envelope [version, status, id, v].
func appendReply(dst []byte, status, id uint64, v any, cctx any) ([]byte, error) {
	return codec.AppendValueWith(appendReplyHead(dst, status, id), v, cctx)
}

// AppendReplyHead appends the reply envelope of call id but its result,
// which the caller appends (registry.Function.InvokeAppend): with it, it
// is the envelope AppendReplyWith appends.
func AppendReplyHead(dst []byte, id uint64) []byte {
	return appendReplyHead(dst, statusOK, id)
}

func appendReplyHead(dst []byte, status, id uint64) []byte {
	dst = append(dst, 0x90|replyFields)
	dst = codec.AppendUint(dst, wireVersion)
	dst = codec.AppendUint(dst, status)
	return codec.AppendUint(dst, id)
}

// AppendItemWith appends one item of stream id: the msgpack array
// [version, 2, id, item], encoded as AppendReplyWith encodes a result.
func AppendItemWith(dst []byte, id uint64, item any, cctx any) ([]byte, error) {
	return appendReply(dst, statusItem, id, item, cctx)
}

// AppendCredit appends the envelope of a credit to stream id of master:
// items more, and the most bytes in flight if bytes is not 0.
func AppendCredit(dst []byte, master string, id uint64, items, bytes uint64) ([]byte, error) {
	return AppendCall(dst, &Call{Kind: KindCredit, Master: master, ID: id}, [2]uint64{items, bytes})
}

// DecodeCredit reads a credit's argument: the items granted, and the most
// bytes in flight (0: unchanged).
func DecodeCredit(arg []byte) (items, bytes uint64, err error) {
	var v [2]uint64
	if err := codec.Unmarshal(arg, &v); err != nil {
		return 0, 0, fmt.Errorf("%w: credit: %v", registry.ErrBadPayload, err)
	}
	return v[0], v[1], nil
}

// AppendErrorReply appends a reply to call id carrying e: the msgpack
// array [version, 1, id, error]. id is 0 when the call's id is unknown
// (its envelope did not decode).
func AppendErrorReply(dst []byte, id uint64, e *bus.RemoteError) []byte {
	dst = append(dst, 0x90|replyFields)
	dst = codec.AppendUint(dst, wireVersion)
	dst = codec.AppendUint(dst, statusError)
	dst = codec.AppendUint(dst, id)
	out, err := codec.AppendValue(dst, e)
	if err != nil { // a bus.RemoteError is strings only: this cannot fail
		panic(err)
	}
	return out
}

// DecodeReply reads a reply envelope. It returns the id of the call it
// answers and either the encoded result (aliasing data) or the remote error
// the worker sent; or an error wrapping [ErrProtocolVersion] or
// [ErrBadPayload] when data is not a reply this binary understands.
func DecodeReply(data []byte) (id uint64, result []byte, remote *bus.RemoteError, err error) {
	id, status, result, remote, err := DecodeReplyStatus(data)
	if err == nil && status == StatusItem {
		return id, nil, nil, fmt.Errorf("%w: reply envelope: a stream's item where a call's reply was due", registry.ErrBadPayload)
	}
	if err == nil && status == StatusProgress {
		return id, nil, nil, fmt.Errorf("%w: reply envelope: a progress report where a call's reply was due", registry.ErrBadPayload)
	}
	return id, result, remote, err
}

// DecodeReplyStatus is DecodeReply for a reply that may be a stream's
// item: it says which status the envelope has.
func DecodeReplyStatus(data []byte) (id uint64, status Status, result []byte, remote *bus.RemoteError, err error) {
	r := codec.Reader{B: data}
	if err := header(&r, replyFields); err != nil {
		return 0, 0, nil, nil, err
	}
	st := r.Uint()
	id = r.Uint()
	if r.Err != nil {
		return 0, 0, nil, nil, fmt.Errorf("%w: reply envelope: %v", registry.ErrBadPayload, r.Err)
	}
	switch st {
	case statusOK, statusItem, uint64(StatusProgress):
		if len(r.B) == 0 {
			return id, 0, nil, nil, fmt.Errorf("%w: reply envelope: no result", registry.ErrBadPayload)
		}
		return id, Status(st), r.B, nil, nil
	case statusError:
		re := new(bus.RemoteError)
		if err := codec.Unmarshal(r.B, re); err != nil {
			return id, 0, nil, nil, fmt.Errorf("%w: error envelope: %v", registry.ErrBadPayload, err)
		}
		return id, StatusError, nil, re, nil
	}
	return id, 0, nil, nil, fmt.Errorf("%w: reply envelope: unknown status %d", registry.ErrBadPayload, st)
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
	dst = codec.AppendUint(dst, wireVersion)
	dst = codec.AppendUint(dst, chunkMark)
	dst = codec.AppendStr(dst, c.Master)
	return appendChunkTail(dst, c)
}

// AppendReplyChunk appends the envelope of a reply's chunk.
func AppendReplyChunk(dst []byte, c *Chunk) []byte {
	dst = append(dst, 0x90|replyChunkFields)
	dst = codec.AppendUint(dst, wireVersion)
	dst = codec.AppendUint(dst, chunkMark)
	return appendChunkTail(dst, c)
}

func appendChunkTail(dst []byte, c *Chunk) []byte {
	dst = codec.AppendUint(dst, c.ID)
	dst = codec.AppendUint(dst, uint64(c.Index))
	dst = codec.AppendUint(dst, uint64(c.Count))
	dst = codec.AppendUint(dst, c.Total)
	n := len(c.Data)
	dst = binary.BigEndian.AppendUint32(append(dst, 0xc6), uint32(n))
	return append(dst, c.Data...)
}

// IsCallChunk reports whether data is a call's chunk envelope (of any
// protocol version: DecodeCallChunk says which).
func IsCallChunk(data []byte) bool { return isMarked(data, callChunkFields, chunkMark) }

// IsReplyChunk reports whether data is a reply's chunk envelope.
func IsReplyChunk(data []byte) bool { return isMarked(data, replyChunkFields, chunkMark) }

// isMarked reports whether data is an envelope of fields elements whose
// second is mark (a chunk's, a batch's), of any protocol version.
func isMarked(data []byte, fields, mark byte) bool {
	if len(data) < 4 || data[0] != 0x90|fields {
		return false
	}
	r := codec.Reader{B: data[1:]}
	r.Uint() // the version
	return r.Err == nil && len(r.B) >= 2 && r.B[0] == 0xcc && r.B[1] == mark
}

// DecodeCallChunk reads a call's chunk envelope; c.Data aliases data.
func DecodeCallChunk(data []byte, c *Chunk) error {
	r := codec.Reader{B: data}
	if err := header(&r, callChunkFields); err != nil {
		return err
	}
	if r.Uint() != chunkMark {
		return fmt.Errorf("%w: not a chunk", registry.ErrBadPayload)
	}
	c.Master = r.Str(c.Master)
	return decodeChunkTail(&r, c)
}

// DecodeReplyChunk reads a reply's chunk envelope; c.Data aliases data.
func DecodeReplyChunk(data []byte, c *Chunk) error {
	r := codec.Reader{B: data}
	if err := header(&r, replyChunkFields); err != nil {
		return err
	}
	if r.Uint() != chunkMark {
		return fmt.Errorf("%w: not a chunk", registry.ErrBadPayload)
	}
	c.Master = ""
	return decodeChunkTail(&r, c)
}

func decodeChunkTail(r *codec.Reader, c *Chunk) error {
	c.ID = r.Uint()
	index, count := r.Uint(), r.Uint()
	c.Total = r.Uint()
	if r.Err == nil && (len(r.B) < 5 || r.B[0] != 0xc6) {
		r.Err = fmt.Errorf("want a bin32 of data")
	}
	if r.Err != nil {
		return fmt.Errorf("%w: chunk envelope: %v", registry.ErrBadPayload, r.Err)
	}
	n := binary.BigEndian.Uint32(r.B[1:])
	if uint64(len(r.B)-5) != uint64(n) {
		return fmt.Errorf("%w: chunk envelope: %d bytes of data announced, %d sent", registry.ErrBadPayload, n, len(r.B)-5)
	}
	if count == 0 || index >= count || count > math.MaxUint32 {
		return fmt.Errorf("%w: chunk %d of %d", registry.ErrBadPayload, index, count)
	}
	c.Index, c.Count, c.Data = uint32(index), uint32(count), r.B[5:]
	return nil
}
