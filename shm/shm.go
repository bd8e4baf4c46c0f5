// Package shm is shared memory that crosses processional calls by
// reference: a [Buffer] is a segment of /dev/shm mapped into the process,
// whose bytes are an ordinary []byte. A Buffer (or a slice of one) inside
// a call's argument or result arrives mapped, not copied, in a worker or
// master on the same host: both sides see the same memory, and a write on
// one is visible on the other (order such writes with the calls
// themselves: a write made before a call is seen by the function, and one
// made by the function is seen after its result arrives). Across hosts the
// bytes are copied, and the receiver gets a Buffer of its own.
//
// A segment is unlinked when the last process holding it releases it.
// Every segment records its holders (process id and start time) in its
// header, so that the segments of processes killed with SIGKILL are
// removed by the survivors or by the next [Sweep] on the host; a segment
// is never removed while a live process holds it, and nothing but this
// package's own segments, owned by the current user, is ever touched.
package shm

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Dir is where segments live: /dev/shm on Linux, a private directory
// of the user's temporary directory on macOS (no mapping on Windows: see
// the package documentation), or $PROCESSIONAL_SHM_DIR (for tests: a
// small tmpfs to fill, a read-only one).
var Dir = func() string {
	if d := os.Getenv("PROCESSIONAL_SHM_DIR"); d != "" {
		return d
	}
	return defaultDir()
}()

// Prefix starts the name of every segment this package makes.
const Prefix = "processional-"

// Errors.
var (
	// ErrClosed: the Buffer was closed.
	ErrClosed = errors.New("shm: buffer closed")
	// ErrNoSegment: a segment named in a reference does not exist (it was
	// unlinked, or lives on another host or in another /dev/shm).
	ErrNoSegment = errors.New("shm: no such segment")
	// ErrRange: an offset or a length out of a buffer's or a segment's
	// bounds, or a view that does not fit its element type.
	ErrRange = errors.New("shm: out of range")
	// ErrFull: /dev/shm has no room (ENOSPC), or a segment has as many
	// holders as its header can record.
	ErrFull = errors.New("shm: full")
	// ErrNoProcess: a buffer was to be sent by reference to a process
	// that no longer runs.
	ErrNoProcess = errors.New("shm: no such process")
)

// The header of a segment: one page, then the data.
//
//	0     magic (written last by the creator: a segment without it is
//	      being created, or its creator died creating it)
//	8     data size
//	16    flags: flagTransient
//	64    slots: holders and transits, slotSize bytes each
const (
	headerSize = 4096
	magic      = 0x314d48534c4f5250 // "PROLSHM1"
	slotsOff   = 64
	slotSize   = 32
	numSlots   = (headerSize - slotsOff) / slotSize
	// flagTransient marks a segment made to carry one value to one
	// receiver (NewTransient): its transits hold it only once its sender
	// let go of it.
	flagTransient = 1
)

// A slot is a holder of the segment: a process (pid and start time), or,
// with a non-zero nonce, a reference in transit to that process, which the
// process clears when it decodes the reference.
type slot struct {
	pid   atomic.Int32 // 0: free; -1: being filled since stamp
	_     int32
	start atomic.Uint64 // the process's start time, in clock ticks since boot
	nonce atomic.Uint64
	stamp atomic.Int64 // unix seconds when the slot was reserved
}

// segment is one mapped segment, shared by the Buffers of this process.
type segment struct {
	name string
	mem  []byte // the whole mapping
	data []byte // mem[headerSize:]
	mine int    // this process's holder slot
	refs int    // Buffers of this process on it; guarded by mapped
	gone bool   // released by this process: its slot may be someone else's now; guarded by mapped
}

func (s *segment) slot(i int) *slot {
	return (*slot)(unsafe.Pointer(&s.mem[slotsOff+i*slotSize]))
}

func (s *segment) magic() *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&s.mem[0])) }

func (s *segment) flags() *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&s.mem[16])) }

// mapped holds this process's segments by name.
var mapped struct {
	sync.Mutex
	byName map[string]*segment
}

// Buffer is a byte buffer, in a shared-memory segment or (received from
// another host) in ordinary memory. Its methods are safe for concurrent
// use; its bytes are the caller's to synchronise.
//
// Close releases the buffer; so does the garbage collector once the
// Buffer is unreachable. The slice [Buffer.Bytes] returns (and any view
// of it) is valid only while its Buffer is open and reachable: keep the
// Buffer while you use them.
type Buffer struct {
	*buffer
}

type buffer struct {
	seg    *segment // nil for a buffer in ordinary memory
	off    int      // in the segment's data
	b      []byte
	closed atomic.Bool
}

// New maps a new segment of n bytes and returns a Buffer of all of it,
// zeroed.
func New(n int) (*Buffer, error) {
	if n <= 0 {
		return nil, fmt.Errorf("%w: shm.New(%d): want a positive size", ErrRange, n)
	}
	if !mappable {
		return FromBytes(make([]byte, n)), nil // see the package documentation
	}
	seg, err := create(n)
	if err != nil {
		return nil, err
	}
	return newBuffer(seg, 0, n), nil
}

// Transient is the sender's hold on a transient segment.
type Transient struct {
	seg  *segment
	once sync.Once
}

// Close lets go of the sender's hold, once the reference is sent (or
// failed to go, after [CancelTransit]): the transit holds it for the
// receiver from then on.
func (t *Transient) Close() error {
	t.once.Do(func() { release(t.seg) })
	return nil
}

// FromBytes returns a Buffer of b in ordinary memory, not shared: what a
// receiver on another host gets.
func FromBytes(b []byte) *Buffer {
	return &Buffer{&buffer{b: b}}
}

func newBuffer(seg *segment, off, n int) *Buffer {
	h := &Buffer{&buffer{seg: seg, off: off, b: seg.data[off : off+n : off+n]}}
	runtime.AddCleanup(h, func(b *buffer) { b.close() }, h.buffer)
	return h
}

// Bytes returns the buffer's bytes; nil once it is closed.
func (b *Buffer) Bytes() []byte {
	if b == nil || b.buffer == nil || b.closed.Load() {
		return nil
	}
	return b.b
}

// Len is the buffer's length in bytes.
func (b *Buffer) Len() int {
	if b == nil || b.buffer == nil {
		return 0
	}
	return len(b.b)
}

// Shared reports whether the buffer is in a shared-memory segment.
func (b *Buffer) Shared() bool { return b != nil && b.buffer != nil && b.seg != nil }

// Slice returns a Buffer of b's bytes [i, j): the same memory, held on its
// own (closing one does not close the other).
func (b *Buffer) Slice(i, j int) (*Buffer, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	if i < 0 || j < i || j > len(b.b) {
		return nil, fmt.Errorf("%w: slice [%d:%d] of a buffer of %d bytes", ErrRange, i, j, len(b.b))
	}
	if b.seg == nil {
		return FromBytes(b.b[i:j:j]), nil
	}
	mapped.Lock()
	if b.seg.gone { // closed meanwhile, and unmapped
		mapped.Unlock()
		return nil, ErrClosed
	}
	b.seg.refs++
	mapped.Unlock()
	return newBuffer(b.seg, b.off+i, j-i), nil
}

func (b *Buffer) usable() error {
	if b == nil || b.buffer == nil {
		return fmt.Errorf("%w: a nil Buffer", ErrClosed)
	}
	if b.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Close releases the buffer: the segment is unlinked once no Buffer of any
// process holds it. Using the buffer afterwards fails with [ErrClosed]. It
// is idempotent.
func (b *Buffer) Close() error {
	if b == nil || b.buffer == nil {
		return nil
	}
	b.close()
	return nil
}

func (b *buffer) close() {
	if !b.closed.Swap(true) && b.seg != nil {
		release(b.seg)
	}
}

// Ref is how a shared buffer travels: its segment's name, and its offset
// and length in the segment's data. ok is false for a buffer in ordinary
// memory or a closed one.
func (b *Buffer) Ref() (name string, off, n int, ok bool) {
	if b.usable() != nil || b.seg == nil {
		return "", 0, 0, false
	}
	return b.seg.name, b.off, len(b.b), true
}

// String describes the buffer.
func (b *Buffer) String() string {
	switch {
	case b == nil || b.buffer == nil:
		return "shm.Buffer(nil)"
	case b.seg == nil:
		return fmt.Sprintf("shm.Buffer(%d bytes, not shared)", len(b.b))
	}
	return fmt.Sprintf("shm.Buffer(%d bytes at %d of %s)", len(b.b), b.off, b.seg.name)
}

// Number is the element types of views.
type Number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64 | ~int | ~uint
}

// View returns b's bytes as a slice of T, the same memory, no copy. b's
// offset must be aligned for T and its length a multiple of T's size.
func View[T Number](b *Buffer) ([]T, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	var zero T
	size, align := int(unsafe.Sizeof(zero)), int(unsafe.Alignof(zero))
	if len(b.b)%size != 0 {
		return nil, fmt.Errorf("%w: a buffer of %d bytes is not a whole number of %T (%d bytes)", ErrRange, len(b.b), zero, size)
	}
	if len(b.b) == 0 {
		return []T{}, nil
	}
	if uintptr(unsafe.Pointer(&b.b[0]))%uintptr(align) != 0 {
		return nil, fmt.Errorf("%w: a buffer at offset %d is not aligned for %T", ErrRange, b.off, zero)
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b.b[0])), len(b.b)/size), nil
}

// Make returns a new shared Buffer of n elements of T, and its view.
func Make[T Number](n int) (*Buffer, []T, error) {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if n <= 0 || n > int(^uint(0)>>1)/size {
		return nil, nil, fmt.Errorf("%w: shm.Make(%d) of %T: want a positive count that fits in memory", ErrRange, n, zero)
	}
	b, err := New(n * size)
	if err != nil {
		return nil, nil, err
	}
	v, err := View[T](b)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return b, v, nil
}

// register records seg among this process's segments.
func register(seg *segment) {
	mapped.Lock()
	if mapped.byName == nil {
		mapped.byName = make(map[string]*segment)
	}
	mapped.byName[seg.name] = seg
	mapped.Unlock()
}

// held reports whether a live process holds seg, or a reference to it is
// in transit to one (from a sender that sent it, for a transient segment).
func held(seg *segment) bool {
	transient := seg.flags().Load()&flagTransient != 0
	for i := range numSlots {
		s := seg.slot(i)
		if !s.live() {
			continue
		}
		if nonce := s.nonce.Load(); transient && nonce != 0 && diedSending(seg, nonce) {
			continue
		}
		return true
	}
	return false
}

// diedSending reports whether the sender of the transit nonce (whose pid
// the nonce carries) died holding seg: before it sent the reference, or
// as it did.
func diedSending(seg *segment, nonce uint64) bool {
	sender := int32(nonce >> 32)
	for i := range numSlots {
		s := seg.slot(i)
		if s.pid.Load() == sender && s.nonce.Load() == 0 && !alive(int(sender), s.start.Load()) {
			return true
		}
	}
	return false
}

// self is this process.
var self = struct {
	pid   int
	start uint64
}{os.Getpid(), startTime(os.Getpid())}
