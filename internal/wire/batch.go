package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/registry"
)

// Batches. Calls to one worker queued at the same moment travel in one
// NATS message, and so do the replies a worker has ready together:
//
//	call batch:  [version, 254, master, ids, calls]
//	reply batch: [version, 254, ids, replies]
//
// ids is the array of the ids of the calls the batch carries, in order;
// calls (replies) the array of their envelopes, each a bin holding a
// whole call (reply) envelope as it would travel alone. The ids come
// first, apart from the envelopes, so that a receiver can fail by name a
// call whose envelope does not decode, or that a batch cut short lost.
// Chunks never travel in a batch, nor does a batch in a batch.
const batchMark = 254

const (
	callBatchFields  = 5
	replyBatchFields = 4
)

// MaxBatched is the largest envelope that joins a batch: a bigger one
// costs its message's overhead many times over already, and goes alone.
const MaxBatched = 64 << 10

// BatchLimit is the size past which a batch grows no more: the calls
// that follow start the next. A message that fits in the server's read
// buffer (64 KiB at most) goes through it without being copied, and the
// receiver starts on the first calls sooner.
const BatchLimit = 32 << 10

// BatchOverhead is the most bytes a batch adds to the envelopes it
// carries, but for each envelope's [EntryOverhead] and the master's id.
const BatchOverhead = 1 + 9 + 2 + 5 + 5 + 5

// EntryOverhead is the most bytes one envelope costs in a batch past its
// own: its id in ids, and its bin header.
const EntryOverhead = 9 + 5

// Batch gathers envelopes to send as one message. The zero Batch is
// empty and ready.
type Batch struct {
	ids  []uint64
	body []byte // the envelopes, each behind a bin32 header
}

// Add appends the envelope env of call id.
func (b *Batch) Add(id uint64, env []byte) {
	b.ids = append(b.ids, id)
	b.body = binary.BigEndian.AppendUint32(append(b.body, 0xc6), uint32(len(env)))
	b.body = append(b.body, env...)
}

// Len is how many envelopes b holds.
func (b *Batch) Len() int { return len(b.ids) }

// IDs are the ids of the calls b holds, in order. They alias b.
func (b *Batch) IDs() []uint64 { return b.ids }

// Size is the most bytes the message of b takes, but for the master's id
// of a call batch.
func (b *Batch) Size() int { return BatchOverhead + 9*len(b.ids) + len(b.body) }

// Single is the envelope of a batch of one, which goes alone: a batch
// of one would only add its overhead.
func (b *Batch) Single() []byte {
	if len(b.ids) != 1 {
		return nil
	}
	return b.body[5:]
}

// Reset empties b, keeping its memory.
func (b *Batch) Reset() {
	b.ids = b.ids[:0]
	b.body = b.body[:0]
}

// AppendCalls appends the call batch of b's envelopes, sent by master.
func (b *Batch) AppendCalls(dst []byte, master string) []byte {
	dst = append(dst, 0x90|callBatchFields)
	dst = codec.AppendUint(dst, wireVersion)
	dst = codec.AppendUint(dst, batchMark)
	dst = codec.AppendStr(dst, master)
	return b.appendTail(dst)
}

// AppendReplies appends the reply batch of b's envelopes.
func (b *Batch) AppendReplies(dst []byte) []byte {
	dst = append(dst, 0x90|replyBatchFields)
	dst = codec.AppendUint(dst, wireVersion)
	dst = codec.AppendUint(dst, batchMark)
	return b.appendTail(dst)
}

func (b *Batch) appendTail(dst []byte) []byte {
	dst = appendArray32(dst, len(b.ids))
	for _, id := range b.ids {
		dst = codec.AppendUint(dst, id)
	}
	dst = appendArray32(dst, len(b.ids))
	return append(dst, b.body...)
}

func appendArray32(dst []byte, n int) []byte {
	return binary.BigEndian.AppendUint32(append(dst, 0xdd), uint32(n))
}

// IsCallBatch reports whether data is a call batch (of any protocol
// version: DecodeCallBatch says which).
func IsCallBatch(data []byte) bool { return isMarked(data, callBatchFields, batchMark) }

// IsReplyBatch reports whether data is a reply batch.
func IsReplyBatch(data []byte) bool { return isMarked(data, replyBatchFields, batchMark) }

// Received is a batch as read: the ids it announces, and the envelopes
// that came whole, which alias the message. Entries is shorter than IDs
// when the batch was cut short or an envelope was malformed: the calls
// of the ids past it are lost, and their callers must be told.
type Received struct {
	Master  string // a call batch's sender
	IDs     []uint64
	Entries [][]byte
}

// DecodeCallBatch reads a call batch into b, reusing its memory. On an
// error, b holds what could be read: the ids (none if the header did
// not decode) and the envelopes before the fault. Errors wrap
// [ErrProtocolVersion] or [ErrBadPayload].
func DecodeCallBatch(data []byte, b *Received) error {
	r := codec.Reader{B: data}
	b.IDs, b.Entries = b.IDs[:0], b.Entries[:0]
	if err := header(&r, callBatchFields); err != nil {
		return err
	}
	if r.Uint() != batchMark {
		return fmt.Errorf("%w: not a batch", registry.ErrBadPayload)
	}
	b.Master = r.Str(b.Master)
	return decodeBatchTail(&r, b, "call")
}

// DecodeReplyBatch reads a reply batch into b, as DecodeCallBatch does.
func DecodeReplyBatch(data []byte, b *Received) error {
	r := codec.Reader{B: data}
	b.Master = ""
	b.IDs, b.Entries = b.IDs[:0], b.Entries[:0]
	if err := header(&r, replyBatchFields); err != nil {
		return err
	}
	if r.Uint() != batchMark {
		return fmt.Errorf("%w: not a batch", registry.ErrBadPayload)
	}
	return decodeBatchTail(&r, b, "reply")
}

func decodeBatchTail(r *codec.Reader, b *Received, what string) error {
	n := readArrayLen(r)
	if r.Err != nil {
		return fmt.Errorf("%w: %s batch: ids: %v", registry.ErrBadPayload, what, r.Err)
	}
	if n == 0 {
		return fmt.Errorf("%w: an empty %s batch", registry.ErrBadPayload, what)
	}
	// readArrayLen refused a count past the bytes left (an id takes one
	// at least): a lie cannot make it allocate past the message.
	for range n {
		id := r.Uint()
		if r.Err != nil {
			b.IDs = b.IDs[:0] // not one id can be trusted to name its call
			return fmt.Errorf("%w: %s batch: id %d of %d: %v", registry.ErrBadPayload, what, len(b.IDs)+1, n, r.Err)
		}
		b.IDs = append(b.IDs, id)
	}
	m := readArrayLen(r)
	if r.Err == nil && m != n {
		r.Err = fmt.Errorf("%d envelopes for %d ids", m, n)
	}
	if r.Err != nil {
		return fmt.Errorf("%w: %s batch of %d: %v", registry.ErrBadPayload, what, n, r.Err)
	}
	for i := range n {
		if len(r.B) < 5 || r.B[0] != 0xc6 {
			return fmt.Errorf("%w: %s batch of %d cut short after %d envelopes", registry.ErrBadPayload, what, n, i)
		}
		size := binary.BigEndian.Uint32(r.B[1:])
		if uint64(len(r.B)-5) < uint64(size) {
			return fmt.Errorf("%w: %s batch of %d cut short in envelope %d (%d bytes announced, %d left)", registry.ErrBadPayload, what, n, i+1, size, len(r.B)-5)
		}
		b.Entries = append(b.Entries, r.B[5:5+size:5+size])
		r.B = r.B[5+size:]
	}
	if len(r.B) != 0 {
		return fmt.Errorf("%w: %s batch of %d: %d bytes past its last envelope", registry.ErrBadPayload, what, n, len(r.B))
	}
	return nil
}

// readArrayLen reads an array header.
func readArrayLen(r *codec.Reader) int {
	if r.Err != nil {
		return 0
	}
	if len(r.B) == 0 {
		r.Err = codec.ErrShort
		return 0
	}
	c := r.B[0]
	switch {
	case c&0xf0 == 0x90:
		r.B = r.B[1:]
		return int(c & 0x0f)
	case c == 0xdc && len(r.B) >= 3:
		n := int(binary.BigEndian.Uint16(r.B[1:]))
		r.B = r.B[3:]
		return n
	case c == 0xdd && len(r.B) >= 5:
		n := binary.BigEndian.Uint32(r.B[1:])
		r.B = r.B[5:]
		if uint64(n) > uint64(len(r.B)) {
			r.Err = fmt.Errorf("an array of %d elements in %d bytes", n, len(r.B))
			return 0
		}
		return int(n)
	case c == 0xdc || c == 0xdd:
		r.Err = codec.ErrShort
		return 0
	}
	r.Err = fmt.Errorf("want an array, got code 0x%02x", c)
	return 0
}
