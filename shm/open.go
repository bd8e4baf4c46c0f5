package shm

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
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

// openSegment maps an existing segment and takes a holder slot in it: the
// slot of the transit nonce, if it names one; mapped held.
func openSegment(name string, nonce uint64) (*segment, error) {
	fd, st, path, err := openFile(name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("shm: map %s: %w", path, err)
	}
	seg := &segment{name: name, mem: mem}
	size := *(*uint64)(unsafe.Pointer(&mem[8]))
	if seg.magic().Load() != magic || size > uint64(len(mem)-headerSize) {
		unix.Munmap(mem)
		return nil, fmt.Errorf("%w: %s is not a complete processional segment", ErrNoSegment, path)
	}
	seg.data = mem[headerSize : headerSize+int(size)]
	if i, ok := transitSlot(seg, nonce); ok {
		// The transit to us becomes our hold: no new slot needed.
		seg.slot(i).nonce.Store(0)
		seg.mine = i
		return seg, nil
	}
	i, err := claim(seg, self.pid, self.start, 0)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	seg.mine = i
	return seg, nil
}

// openFile opens the file of segment name, a regular file of the current
// user at least a header long, and returns it with its status and path.
func openFile(name string) (fd int, st unix.Stat_t, path string, err error) {
	path = Dir + "/" + name
	fd, err = unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ENOENT) {
		return -1, st, path, fmt.Errorf("%w: %s (unlinked, or on another host)", ErrNoSegment, path)
	}
	if err != nil {
		return -1, st, path, fmt.Errorf("shm: open %s: %w", path, err)
	}
	switch err = unix.Fstat(fd, &st); {
	case err != nil:
		err = fmt.Errorf("shm: stat %s: %w", path, err)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = fmt.Errorf("%w: %s is not a regular file", ErrNoSegment, path)
	case st.Uid != uint32(os.Getuid()):
		err = fmt.Errorf("%w: %s belongs to another user", ErrNoSegment, path)
	case st.Size < headerSize:
		err = fmt.Errorf("%w: %s is %d bytes, shorter than its header", ErrNoSegment, path, st.Size)
	}
	if err != nil {
		unix.Close(fd)
		return -1, st, path, err
	}
	return fd, st, path, nil
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
		var now unix.Timespec
		unix.ClockGettime(unix.CLOCK_REALTIME, &now)
		s.stamp.Store(now.Sec)
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
		var now unix.Timespec
		unix.ClockGettime(unix.CLOCK_REALTIME, &now)
		return now.Sec-s.stamp.Load() < 60
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
		return 0, fmt.Errorf("shm: no process %d on this host to send a buffer to", pid)
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

// startTime returns the start time of process pid, in clock ticks since
// boot, or 0 if there is no such process: with the pid, it names a process
// even once its pid is reused.
func startTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis. starttime is field 22.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
		return 0 // a zombie holds nothing any more
	}
	v, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// Sweep removes the segments of this package, owned by the current user,
// that no live process holds: those of processes killed before they could
// release them. A segment still being created (no magic yet) is left
// alone unless it is older than a minute. It returns how many it removed.
func Sweep() (int, error) {
	entries, err := os.ReadDir(Dir)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, e := range entries {
		name := e.Name()
		if !validName(name) {
			continue
		}
		if sweepOne(name) {
			removed++
		}
	}
	return removed, nil
}

func sweepOne(name string) bool {
	mapped.Lock()
	_, mine := mapped.byName[name]
	mapped.Unlock()
	if mine {
		return false // this process holds it
	}
	path := Dir + "/" + name
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != uint32(os.Getuid()) {
		return false
	}
	if st.Size < headerSize {
		return sweepIncomplete(path, st)
	}
	mem, err := unix.Mmap(fd, 0, headerSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return false
	}
	defer unix.Munmap(mem)
	seg := &segment{name: name, mem: mem}
	if seg.magic().Load() != magic {
		return sweepIncomplete(path, st)
	}
	if held(seg) {
		return false
	}
	return unix.Unlink(path) == nil
}

// sweepIncomplete removes a segment whose creator never finished it, once
// it is old enough that the creator is surely done or dead.
func sweepIncomplete(path string, st unix.Stat_t) bool {
	var now unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME, &now)
	if now.Sec-st.Mtim.Sec < 60 {
		return false
	}
	return unix.Unlink(path) == nil
}

// Domain names the shared memory this process sees: processes with the
// same Domain share /dev/shm, and exchange buffers by reference; others
// copy. It is the kernel's boot id with /dev/shm's device and inode; the
// environment variable PROCESSIONAL_SHM_DOMAIN overrides it (tests set it
// to force copies).
func Domain() string { return domain() }

var domain = sync.OnceValue(func() string {
	if d := os.Getenv("PROCESSIONAL_SHM_DOMAIN"); d != "" {
		return d
	}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	var st unix.Stat_t
	if unix.Stat(Dir, &st) != nil {
		return "" // no /dev/shm: share with no one
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%d", strings.TrimSpace(string(boot)), st.Dev, st.Ino)))
	return hex.EncodeToString(h[:8])
})

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
