//go:build windows

package lane

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// On Windows a socket cannot be handed down to a child: there is no
// socketpair, exec.Cmd's ExtraFiles are not for Windows, and
// net.FileConn is not implemented there. A spawned worker dials its lane
// instead ([Listen], [Dial]), over the AF_UNIX sockets of Windows 10 and
// later.

// ErrNoLane says that this system hands down no lane: Pair and Inherit
// fail with it, and the master dials its lane instead.
var ErrNoLane = fmt.Errorf("%w: a lane handed down to a child (socketpair) on windows", errors.ErrUnsupported)

// Pair fails on Windows with ErrNoLane.
func Pair() (*net.UnixConn, *os.File, error) { return nil, nil, ErrNoLane }

// Inherit fails on Windows with ErrNoLane.
func Inherit(int) (*net.UnixConn, error) { return nil, ErrNoLane }

// tryWrite writes b, waiting as the connection does: Windows gives a
// socket's writes no way not to wait.
func (c *Conn) tryWrite(b []byte) (int, error) { return c.c.Write(b) }
