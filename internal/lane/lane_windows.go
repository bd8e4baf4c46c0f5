//go:build windows

package lane

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// On Windows a spawned worker has no lane: exec.Cmd's ExtraFiles, by
// which the lane's end is handed down, are not for Windows. Spawned
// workers there go by NATS, and a Job Object carries their fate.

// ErrNoLane says that this system gives spawned workers no lane.
var ErrNoLane = fmt.Errorf("%w: the local lane on windows", errors.ErrUnsupported)

// Pair fails on Windows with ErrNoLane.
func Pair() (*net.UnixConn, *os.File, error) { return nil, nil, ErrNoLane }

// Inherit fails on Windows with ErrNoLane.
func Inherit(int) (*net.UnixConn, error) { return nil, ErrNoLane }

// tryWrite writes b, waiting as the connection does: no lane is made on
// Windows, so this never runs there but in tests of a Conn on a pipe.
func (c *Conn) tryWrite(b []byte) (int, error) { return c.c.Write(b) }
