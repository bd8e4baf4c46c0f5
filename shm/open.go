package shm

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"
)

func randomName() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validName reports whether name can be one of this package's segments:
// it is used in a path, and comes from the wire.
func validName(name string) bool {
	if !strings.HasPrefix(name, Prefix) || len(name) != len(Prefix)+24 {
		return false
	}
	_, err := hex.DecodeString(name[len(Prefix):])
	return err == nil
}

// Open returns a Buffer of the n bytes at off in the data of segment name,
// a reference that arrived from another process of this host, and
// registers this process as a holder. A nonzero nonce names the transit
// slot the sender set for this process, which Open clears. A segment that
// does not exist fails with [ErrNoSegment]; a range outside it, with
// [ErrRange]: a crafted reference reads nothing outside the mapping.
func Open(name string, off, n int, nonce uint64) (*Buffer, error) {
	if !validName(name) {
		return nil, fmt.Errorf("%w: %q is not a processional segment name", ErrNoSegment, name)
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("%w: offset %d, length %d", ErrRange, off, n)
	}
	mapped.Lock()
	defer mapped.Unlock()
	seg := mapped.byName[name]
	if seg == nil {
		var err error
		if seg, err = openSegment(name, nonce); err != nil {
			return nil, err
		}
		if mapped.byName == nil {
			mapped.byName = make(map[string]*segment)
		}
		mapped.byName[name] = seg
	} else if nonce != 0 {
		clearTransit(seg, nonce)
	}
	if off > len(seg.data) || n > len(seg.data)-off {
		if seg.refs == 0 {
			mapped.Unlock()
			releaseUnused(seg)
			mapped.Lock()
		}
		return nil, fmt.Errorf("%w: bytes [%d, %d) of segment %s, which has %d", ErrRange, off, off+n, name, len(seg.data))
	}
	seg.refs++
	return newBuffer(seg, off, n), nil
}

// releaseUnused undoes an open that handed out no Buffer; mapped not held.
func releaseUnused(seg *segment) {
	mapped.Lock()
	seg.refs++
	mapped.Unlock()
	release(seg)
}

// hold takes seg for this process: the slot of the transit nonce, if it
// names one to us, becomes our hold (no new slot needed); else a free
// slot.
func hold(seg *segment, nonce uint64) error {
	if i, ok := transitSlot(seg, nonce); ok {
		seg.slot(i).nonce.Store(0)
		seg.mine = i
		return nil
	}
	i, err := claim(seg, self.pid, self.start, 0)
	seg.mine = i
	return err
}

// claim takes a free slot for (pid, start, nonce); a slot whose process
// is dead is free.
func claim(seg *segment, pid int, start, nonce uint64) (int, error) {
	for i := range numSlots {
		s := seg.slot(i)
		old := s.pid.Load()
		if old != 0 && s.live() {
			continue
		}
		if !s.pid.CompareAndSwap(old, -1) { // reserved while it is filled
			continue
		}
		s.stamp.Store(time.Now().Unix())
		s.start.Store(start)
		s.nonce.Store(nonce)
		s.pid.Store(int32(pid))
		return i, nil
	}
	return 0, fmt.Errorf("%w: segment %s has %d holders already", ErrFull, seg.name, numSlots)
}

func clearTransit(seg *segment, nonce uint64) {
	if i, ok := transitSlot(seg, nonce); ok {
		seg.slot(i).pid.CompareAndSwap(int32(self.pid), 0)
	}
}

// transitSlot finds the slot of a transit to this process.
func transitSlot(seg *segment, nonce uint64) (int, bool) {
	if nonce == 0 {
		return 0, false
	}
	for i := range numSlots {
		s := seg.slot(i)
		if s.nonce.Load() == nonce && s.pid.Load() == int32(self.pid) {
			return i, true
		}
	}
	return 0, false
}

// live reports whether the slot holds a live process, or is being filled.
func (s *slot) live() bool {
	pid := s.pid.Load()
	if pid == -1 {
		// Being filled; a process killed while filling it leaves it so:
		// a reservation older than a minute is stale.
		return time.Now().Unix()-s.stamp.Load() < 60
	}
	return pid > 0 && alive(int(pid), s.start.Load())
}

var nonces struct {
	sync.Mutex
	next uint64
}

// Transit records in b's segment that a reference to it is on its way to
// process pid, so that the segment outlives b until pid opens it (or
// dies). It returns the nonce to send with the reference.
func (b *Buffer) Transit(pid int) (uint64, error) {
	if err := b.usable(); err != nil {
		return 0, err
	}
	if b.seg == nil {
		return 0, fmt.Errorf("shm: Transit of a buffer that is not shared")
	}
	return transit(b.seg, pid)
}

// transit records in seg a reference on its way to process pid, and
// returns its nonce.
func transit(seg *segment, pid int) (uint64, error) {
	start := cachedStart(pid)
	if start == 0 {
		return 0, fmt.Errorf("%w: no process %d on this host to send a buffer to", ErrNoProcess, pid)
	}
	nonces.Lock()
	nonces.next++
	nonce := uint64(self.pid)<<32 | nonces.next&0xffffffff
	nonces.Unlock()
	if _, err := claim(seg, pid, start, nonce); err != nil {
		return 0, err
	}
	return nonce, nil
}

// DropTransit clears a transit slot this process was sent and will not
// open (the message that carried it is dropped).
func DropTransit(name string, nonce uint64) {
	if !validName(name) || nonce == 0 {
		return
	}
	b, err := Open(name, 0, 0, nonce)
	if err == nil {
		b.Close()
	}
}

// CancelTransit clears a transit this process set ([Buffer.Transit])
// whose reference was never sent (the message carrying it failed to go):
// the segment then need not wait for its receiver to die. A segment
// nothing else holds is unlinked.
func CancelTransit(name string, nonce uint64) {
	if !validName(name) || nonce == 0 || int(nonce>>32) != self.pid {
		return // not a transit of ours
	}
	b, err := Open(name, 0, 0, 0)
	if err != nil {
		return
	}
	for i := range numSlots {
		s := b.seg.slot(i)
		if s.nonce.Load() == nonce {
			if pid := s.pid.Load(); pid > 0 && s.nonce.CompareAndSwap(nonce, 0) {
				s.pid.CompareAndSwap(pid, 0)
			}
		}
	}
	b.Close()
}

// alive reports whether process pid, started at start, still runs.
func alive(pid int, start uint64) bool {
	if pid == -1 {
		return true // a slot being filled
	}
	if pid <= 0 {
		return false
	}
	if pid == self.pid {
		return start == self.start
	}
	return cachedStart(pid) == start
}

// startCache remembers processes' start times for a moment: a call that
// sends a buffer checks its segment's holders, and reading /proc for each
// on every call cost more than the call. A process that died is seen dead
// at most startTTL late.
var startCache struct {
	sync.Mutex
	m map[int]startEntry
}

type startEntry struct {
	start uint64
	at    time.Time
}

const startTTL = time.Second

func cachedStart(pid int) uint64 {
	now := time.Now()
	startCache.Lock()
	e, ok := startCache.m[pid]
	startCache.Unlock()
	if ok && now.Sub(e.at) < startTTL {
		return e.start
	}
	st := startTime(pid)
	startCache.Lock()
	if startCache.m == nil || len(startCache.m) > 4096 {
		startCache.m = make(map[int]startEntry)
	}
	startCache.m[pid] = startEntry{st, now}
	startCache.Unlock()
	return st
}

// Domain names the shared memory this process sees: processes with the
// same Domain share /dev/shm, and exchange buffers by reference; others
// copy. It is the kernel's boot id with /dev/shm's device and inode; the
// environment variable PROCESSIONAL_SHM_DOMAIN overrides it (tests set it
// to force copies).
func Domain() string { return domain() }

// ReleaseAll releases every segment this process holds, as it exits: its
// slots are cleared, and the segments no other live process holds are
// unlinked. The Buffers of the process must not be used afterwards.
func ReleaseAll() {
	mapped.Lock()
	segs := make([]*segment, 0, len(mapped.byName))
	for _, seg := range mapped.byName {
		segs = append(segs, seg)
	}
	mapped.Unlock()
	for _, seg := range segs {
		mapped.Lock()
		seg.refs = 1 // whatever Buffers are left: this is the last release
		mapped.Unlock()
		release(seg)
	}
}

// Exited tells the package that process pid has exited (its parent reaped
// it): the segments it held are no longer held by it, at once rather than
// when the package's memory of its start time expires.
func Exited(pid int) {
	startCache.Lock()
	delete(startCache.m, pid)
	startCache.Unlock()
}
