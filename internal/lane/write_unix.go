//go:build unix

package lane

import "syscall"

// tryWrite writes what the socket takes of b without waiting.
func (c *Conn) tryWrite(b []byte) (n int, err error) {
	raw := c.rawConn()
	if raw == nil {
		return c.c.Write(b)
	}
	rerr := raw.Write(func(fd uintptr) bool {
		for {
			n, err = syscall.Write(int(fd), b)
			if err != syscall.EINTR {
				break
			}
		}
		if err == syscall.EAGAIN {
			n, err = 0, nil
		}
		if n < 0 {
			n = 0
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	return n, err
}
