//go:build linux || darwin

package shm

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Transient segments carry one value to one process of this host: a big
// argument or result, which would otherwise go in the message. Their
// bytes are written and read with the file's own writes and reads, never
// through a mapping: on a virtual machine, the first touch of each page
// of a new mapping costs several microseconds (15 ms for 10 MB on the
// machines the project is measured on, against 3 ms to pwrite them and
// 2.5 ms to pread them), and a transient segment's mapping would be new
// every time. Only its header, where holders and transits are recorded,
// is mapped.
//
// A transient segment's transits hold it only once its sender let go of
// it (Close, once the reference is sent): should the sender die first,
// the reference may never have left it, and a sweep removes the segment
// though its receiver lives.

// SendTransient writes data into a new transient segment, in transit to
// process pid, and returns the sender's hold on it with the segment's
// name and the transit's nonce: what the receiver needs to read it
// ([ReceiveTransient]). /dev/shm full fails with [ErrFull].
func SendTransient(data []byte, pid int) (t *Transient, name string, nonce uint64, err error) {
	if len(data) == 0 {
		return nil, "", 0, fmt.Errorf("%w: an empty transient segment", ErrRange)
	}
	fd, err := tmpfile(Dir)
	named := ""
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
		named = Prefix + randomName() // no unnamed files here: named first
		fd, err = unix.Open(Dir+"/"+named, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	}
	if err != nil {
		return nil, "", 0, fmt.Errorf("shm: create in %s: %w", Dir, err)
	}
	defer unix.Close(fd)
	seg, err := writeTransient(fd, data)
	if err != nil {
		if named != "" {
			unix.Unlink(Dir + "/" + named)
		}
		return nil, "", 0, err
	}
	if named != "" {
		seg.name = named
	} else if err := link(fd, seg); err != nil {
		unix.Munmap(seg.mem)
		return nil, "", 0, err
	}
	t = &Transient{seg: seg}
	nonce, err = transit(seg, pid)
	if err != nil {
		t.Close()
		return nil, "", 0, err
	}
	return t, seg.name, nonce, nil
}

// writeTransient writes a transient segment's header and data into the
// new file fd, and maps its header.
func writeTransient(fd int, data []byte) (*segment, error) {
	var zero [headerSize]byte
	if err := pwriteAll(fd, zero[:], 0); err != nil {
		return nil, err
	}
	if err := pwriteAll(fd, data, headerSize); err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(fd, 0, headerSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: map a header in %s: %w", Dir, err)
	}
	seg := &segment{mem: mem, refs: 1}
	*(*uint64)(unsafe.Pointer(&mem[8])) = uint64(len(data))
	seg.flags().Store(flagTransient)
	s := seg.slot(0)
	s.start.Store(self.start)
	s.pid.Store(int32(self.pid))
	seg.magic().Store(magic)
	return seg, nil
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ENOSPC) {
			return fmt.Errorf("%w: no room in %s for %d bytes: %v", ErrFull, Dir, len(b), err)
		}
		if err != nil {
			return fmt.Errorf("shm: write in %s: %w", Dir, err)
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// link gives the unnamed file fd, a segment made whole, its name.
func link(fd int, seg *segment) error {
	var err error
	for range 10 {
		seg.name = Prefix + randomName()
		// Without O_EXCL at open, an unnamed file may be linked by its
		// /proc path, with no privilege (AT_EMPTY_PATH would need one).
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, Dir+"/"+seg.name, unix.AT_SYMLINK_FOLLOW)
		if !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("shm: name a segment in %s: %w", Dir, err)
	}
	return nil
}

// ReceiveTransient reads the n bytes of transient segment name, sent to
// this process under nonce, into dst (grown to n bytes), and lets go of
// the segment, which is unlinked when nothing else holds it. A segment
// that does not exist (gone, swept, another user's) fails with
// [ErrNoSegment]; n past its size, with [ErrRange].
func ReceiveTransient(name string, n int, nonce uint64, dst []byte) ([]byte, error) {
	if !validName(name) {
		return nil, fmt.Errorf("%w: %q is not a processional segment name", ErrNoSegment, name)
	}
	fd, st, path, err := openFile(name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	seg, size, err := mapSegment(fd, st, name, path, headerSize, 0) // the header only
	if err != nil {
		return nil, err
	}
	seg.refs = 1
	if n < 0 || uint64(n) > size {
		unix.Munmap(seg.mem)
		return nil, fmt.Errorf("%w: %d bytes of segment %s, which has %d", ErrRange, n, name, size)
	}
	if err := hold(seg, nonce); err != nil {
		unix.Munmap(seg.mem)
		return nil, err
	}
	defer release(seg)
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	for off := 0; off < n; {
		k, err := unix.Pread(fd, dst[off:], int64(headerSize+off))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err == nil && k == 0 {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, fmt.Errorf("shm: read %s: %w", path, err)
		}
		off += k
	}
	return dst, nil
}
