package codec

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/processional/processional/internal/registry"
	"github.com/processional/processional/shm"
)

// Transient segments. A big value (an argument or a result of at least
// [TransientMin] bytes encoded) sent to a process of this host travels in
// a shared-memory segment of its own instead of in the message: the
// sender copies its encoding into a new segment (shm.NewTransient),
// records it in transit to the receiver, and sends in the value's place a
// msgpack extension of type [TransientExtType] whose data is the array
// [segment, length, nonce]; once the message is sent, it lets go of the
// segment. The receiver reads the segment and lets go of it, and the
// segment is unlinked then; it decodes the value from what it read. It follows the
// shm package's rules: a receiver killed before it closed it, a sender
// killed before it sent it, a message never decoded (DropTransits) or
// never sent (CancelTransits) leaves nothing behind once the sweep has
// run.
//
// The segment is written and read with the file's own writes and reads,
// not through mappings (see shm.SendTransient for the figures that chose
// it), and the decoders copy what they keep (a []byte, a slice of
// numbers, a string) out of the buffer read: a Go slice into a mapping
// would outlive it unseen by the garbage collector. A value that needs no
// copy at all is what a *shm.Buffer is for.
//
// The segment cannot be made, /dev/shm being full or refused: the value
// stays in the message (chunks, or one frame on the lane). A fallback,
// never a failure.

// TransientExtType is the msgpack extension type of a value in a
// transient segment.
const TransientExtType int8 = 3

// TransientMin is the encoded size from which a value to a process of
// this host goes in a transient segment: below it, the message's own
// copies cost less than making and mapping a segment (see
// docs/shared-memory.md for the measurement). $PROCESSIONAL_TRANSIENT_MIN
// sets it in bytes ("off" or 0: never).
var TransientMin = transientMin(os.Getenv("PROCESSIONAL_TRANSIENT_MIN"))

// defaultTransientMin is TransientMin unless the environment says
// otherwise.
const defaultTransientMin = 512 << 10

func transientMin(s string) int {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return defaultTransientMin
	case s == "off":
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		fmt.Fprintf(os.Stderr, "processional: PROCESSIONAL_TRANSIENT_MIN=%q is not a size in bytes or \"off\": using %d\n", s, defaultTransientMin)
		return defaultTransientMin
	}
	return n
}

// TransientReceiver is what the context given to [AppendValueWith]
// offers for a big value to go in a transient segment: the receiver's
// process id when it shares this process's /dev/shm and the message goes
// by NATS (0 otherwise: the value stays in the message; on a spawned
// worker's lane, one frame costs less than a segment at every size); the
// largest value the sender may send, which stays in the message to be
// refused as too big; and a place for the segments made, which the
// sender closes once the message is sent (or failed to go, after
// CancelTransits).
type TransientReceiver interface {
	TransientTo() int
	MaxValue() uint64
	Sending(t *shm.Transient)
}

// transients counts the values this process sent and received in
// transient segments.
var transients struct{ sent, received atomic.Uint64 }

// TransientCounts returns how many values this process has sent and
// received in transient segments: which road big values took, for tests
// and the diagnosis verbs.
func TransientCounts() (sent, received uint64) {
	return transients.sent.Load(), transients.received.Load()
}

// toTransient moves the encoded value at out[start:] to a new transient
// segment in transit to r's pid, hands r the sender's hold to close once
// the message is sent, and returns out with the reference in its place;
// or out as it is, should the segment not be made.
func toTransient(out []byte, start int, r TransientReceiver) []byte {
	n := len(out) - start
	t, name, nonce, err := shm.SendTransient(out[start:], r.TransientTo())
	if err != nil {
		return out // /dev/shm full or refused: the message carries it
	}
	r.Sending(t)
	transients.sent.Add(1)
	var buf [64]byte
	body := append(buf[:0], 0x93)
	body = AppendStr(body, name)
	body = AppendUint(body, uint64(n))
	body = AppendUint(body, nonce)
	out = append(out[:start], 0xc7, byte(len(body)), byte(TransientExtType))
	return append(out, body...)
}

// transientRef is a decoded reference to a transient segment.
type transientRef struct {
	name  string
	n     int
	nonce uint64
}

// isTransient reports whether the msgpack value at the start of data is
// a reference to a transient segment.
func isTransient(data []byte) bool {
	typ, _, ok := extAt(data)
	return ok && typ == TransientExtType
}

// extAt returns the type and data of the extension at the start of data.
func extAt(data []byte) (typ int8, body []byte, ok bool) {
	if len(data) < 2 {
		return 0, nil, false
	}
	var hdr, n int
	switch c := data[0]; {
	case c >= 0xd4 && c <= 0xd8:
		hdr, n = 2, 1<<(c-0xd4)
	case c == 0xc7 && len(data) >= 3:
		hdr, n = 3, int(data[1])
	case c == 0xc8 && len(data) >= 4:
		hdr, n = 4, int(data[1])<<8|int(data[2])
	case c == 0xc9 && len(data) >= 6:
		hdr, n = 6, int(uint32(data[1])<<24|uint32(data[2])<<16|uint32(data[3])<<8|uint32(data[4]))
	default:
		return 0, nil, false
	}
	if n > len(data)-hdr {
		return int8(data[hdr-1]), nil, false
	}
	return int8(data[hdr-1]), data[hdr : hdr+n], true
}

// parseTransient reads a transient reference's data.
func parseTransient(body []byte) (transientRef, error) {
	r := Reader{B: body}
	if len(r.B) == 0 || r.B[0] != 0x93 {
		return transientRef{}, fmt.Errorf("%w: a value in transient shared memory: not a 3-element array", registry.ErrBadPayload)
	}
	r.B = r.B[1:]
	name := r.Str("")
	n, nonce := r.Uint(), r.Uint()
	if r.Err != nil {
		return transientRef{}, fmt.Errorf("%w: a value in transient shared memory: %v", registry.ErrBadPayload, r.Err)
	}
	if n == 0 || n > uint64(int(^uint(0)>>1)) {
		return transientRef{}, fmt.Errorf("%w: a value in transient shared memory of %d bytes", registry.ErrBadPayload, n)
	}
	return transientRef{name: name, n: int(n), nonce: nonce}, nil
}

// errNestedTransient: a transient segment holds, at its top, a reference
// to another: no sender makes that.
var errNestedTransient = errors.New("a transient segment refers to another")

// unmarshalTransient decodes into v the value in the transient segment
// data refers to, read into a buffer of its own, and lets go of the
// segment: unlinked, as nothing holds it any more. A segment that is gone
// (unlinked, swept, or another user's) fails with shm.ErrNoSegment.
func unmarshalTransient(data []byte, v any, ctx any) error {
	_, body, _ := extAt(data)
	ref, err := parseTransient(body)
	if err != nil {
		return err
	}
	buf, err := shm.ReceiveTransient(ref.name, ref.n, ref.nonce, getReadBuffer())
	if err != nil {
		return fmt.Errorf("a value of %d bytes in transient shared memory: %w", ref.n, err)
	}
	defer putReadBuffer(buf) // nothing decoded aliases it: the decoders copy
	transients.received.Add(1)
	if isTransient(buf) {
		return fmt.Errorf("%w: %v", registry.ErrBadPayload, errNestedTransient)
	}
	return UnmarshalWith(buf, v, ctx)
}

// readBuffers keeps a few buffers that transient values were read into:
// a new one each time would be fresh memory, whose pages cost their first
// touch at every big call. One past keepReadBuffer is let go: a value of
// a gigabyte once must not hold a gigabyte for good.
var readBuffers = make(chan []byte, 2)

const keepReadBuffer = 64 << 20

func getReadBuffer() []byte {
	select {
	case b := <-readBuffers:
		return b[:0]
	default:
		return nil
	}
}

func putReadBuffer(b []byte) {
	if cap(b) > keepReadBuffer {
		return
	}
	select {
	case readBuffers <- b:
	default:
	}
}

// dropTransient lets go of a transient segment never decoded, and of the
// shared-memory buffers its value refers to.
func dropTransient(body []byte) {
	ref, err := parseTransient(body)
	if err != nil {
		return
	}
	b, err := shm.Open(ref.name, 0, ref.n, ref.nonce)
	if err != nil {
		return
	}
	if inner := b.Bytes(); !isTransient(inner) {
		DropTransits(inner)
	}
	b.Close()
}

// cancelTransient cancels the transit of a transient segment this process
// made and could not send, and those of the buffers its value refers to.
func cancelTransient(body []byte) {
	ref, err := parseTransient(body)
	if err != nil {
		return
	}
	b, err := shm.Open(ref.name, 0, ref.n, 0)
	if err != nil {
		return
	}
	if inner := b.Bytes(); !isTransient(inner) {
		CancelTransits(inner)
	}
	b.Close()
	shm.CancelTransit(ref.name, ref.nonce)
}
