//go:build unix

package lane

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// Pair makes a lane's two ends: the master's, and the child's file to
// hand the worker process (exec.Cmd.ExtraFiles). Both are close-on-exec:
// only the process the child's end is handed to gets it.
func Pair() (*net.UnixConn, *os.File, error) {
	// Not every system takes SOCK_CLOEXEC here (macOS does not): the fork
	// lock keeps an exec from inheriting the pair before it is marked,
	// as os/exec itself does.
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("lane: socketpair: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "lane")
	defer mine.Close() // FileConn keeps a copy of its own
	child := os.NewFile(uintptr(fds[1]), "lane (child's end)")
	c, err := net.FileConn(mine)
	if err != nil {
		child.Close()
		return nil, nil, fmt.Errorf("lane: %w", err)
	}
	return c.(*net.UnixConn), child, nil
}

// Inherit takes the lane's end a worker inherited as descriptor fd, and
// closes fd: the lane lives on in a close-on-exec copy, which the
// worker's own children do not inherit.
func Inherit(fd int) (*net.UnixConn, error) {
	f := os.NewFile(uintptr(fd), "lane")
	if f == nil {
		return nil, fmt.Errorf("lane: descriptor %d is not open", fd)
	}
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("lane: descriptor %d: %w", fd, err)
	}
	u, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("lane: descriptor %d is a %T, not a Unix socket", fd, c)
	}
	return u, nil
}
