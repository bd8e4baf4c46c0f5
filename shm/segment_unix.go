//go:build linux || darwin

package shm

import (
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mappable: segments are files of Dir, mapped.
const mappable = true

// The system's ways of making a segment, as variables: the tests run
// macOS's (a segment named as it is made, sized with ftruncate, mapped
// lazily) on Linux too, where $SHM_TEST_NAMED asks for them.
var (
	tmpfile  = openTmpfile
	allocate = fallocate
	populate = mapPopulate
)

// create makes, maps and holds a new segment of n data bytes. The
// segment is made whole before it has a name: an unnamed file (O_TMPFILE)
// is sized, mapped and given its header, and only then linked into Dir,
// so that a process killed while it creates one leaves nothing behind.
// Where Dir's file system has no unnamed files, the segment is named
// first, and one left incomplete is swept once a minute old.
func create(n int) (*segment, error) {
	fd, err := tmpfile(Dir)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			return createNamed(n)
		}
		return nil, fmt.Errorf("shm: create in %s: %w", Dir, err)
	}
	defer unix.Close(fd)
	seg, err := mapNew(fd, n)
	if err != nil {
		return nil, fmt.Errorf("shm: create in %s: %w", Dir, err)
	}
	if err := link(fd, seg); err != nil {
		unix.Munmap(seg.mem)
		return nil, err
	}
	register(seg)
	return seg, nil
}

// createNamed is create where Dir's file system has no unnamed files.
func createNamed(n int) (*segment, error) {
	for range 10 {
		name := Prefix + randomName()
		path := Dir + "/" + name
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("shm: create %s: %w", path, err)
		}
		seg, err := mapNew(fd, n)
		unix.Close(fd)
		if err != nil {
			unix.Unlink(path)
			return nil, fmt.Errorf("shm: create %s: %w", path, err)
		}
		seg.name = name
		register(seg)
		return seg, nil
	}
	return nil, fmt.Errorf("shm: no free segment name")
}

// mapNew sizes the new file fd for n data bytes, maps it, and writes its
// header, with this process as its holder.
func mapNew(fd int, n int) (*segment, error) {
	size := headerSize + n
	if err := allocate(fd, int64(size)); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return nil, fmt.Errorf("%w: no room in %s for %d bytes: %v", ErrFull, Dir, n, err)
		}
		if err := unix.Ftruncate(fd, int64(size)); err != nil { // a file system with no fallocate
			return nil, fmt.Errorf("size: %w", err)
		}
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|populate)
	if err != nil {
		return nil, fmt.Errorf("map: %w", err)
	}
	seg := &segment{mem: mem, data: mem[headerSize:], refs: 1}
	*(*uint64)(unsafe.Pointer(&mem[8])) = uint64(n)
	s := seg.slot(0)
	s.start.Store(self.start)
	s.pid.Store(int32(self.pid))
	seg.mine = 0
	seg.magic().Store(magic)
	return seg, nil
}

// release drops one Buffer's hold on seg; the last one of the process
// clears its slot, unlinks the segment if no live process holds it, and
// unmaps it.
func release(seg *segment) {
	mapped.Lock()
	seg.refs--
	if seg.refs > 0 || seg.gone {
		mapped.Unlock()
		return
	}
	seg.gone = true
	if mapped.byName[seg.name] == seg {
		delete(mapped.byName, seg.name)
	}
	mapped.Unlock()
	// Only our own slot: should it be someone else's already, leave it.
	seg.slot(seg.mine).pid.CompareAndSwap(int32(self.pid), 0)
	if !held(seg) {
		unix.Unlink(Dir + "/" + seg.name)
	}
	unix.Munmap(seg.mem)
}

// openSegment maps an existing segment and takes a holder slot in it: the
// slot of the transit nonce, if it names one; mapped held.
func openSegment(name string, nonce uint64) (*segment, error) {
	fd, st, path, err := openFile(name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	seg, size, err := mapSegment(fd, st, name, path, int(st.Size), populate)
	if err != nil {
		return nil, err
	}
	seg.data = seg.mem[headerSize : headerSize+int(size)]
	if err := hold(seg, nonce); err != nil {
		unix.Munmap(seg.mem)
		return nil, err
	}
	return seg, nil
}

// mapSegment maps the first length bytes of fd, the file of segment name
// (st its status, path its path), and checks that it is a complete
// segment; it returns it with its data size.
func mapSegment(fd int, st unix.Stat_t, name, path string, length, flags int) (*segment, uint64, error) {
	mem, err := unix.Mmap(fd, 0, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|flags)
	if err != nil {
		return nil, 0, fmt.Errorf("shm: map %s: %w", path, err)
	}
	seg := &segment{name: name, mem: mem}
	size := *(*uint64)(unsafe.Pointer(&mem[8]))
	if seg.magic().Load() != magic || size > uint64(st.Size-headerSize) {
		unix.Munmap(mem)
		return nil, 0, fmt.Errorf("%w: %s is not a complete processional segment", ErrNoSegment, path)
	}
	return seg, size, nil
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
	if time.Now().Unix()-st.Mtim.Sec < 60 {
		return false
	}
	return unix.Unlink(path) == nil
}
