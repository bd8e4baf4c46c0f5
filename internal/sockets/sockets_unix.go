//go:build unix

package sockets

import (
	"errors"
	"syscall"
)

// Refused reports whether err is a connection refused: no one listens.
func Refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// NoUnix reports whether err says that the system has no Unix sockets:
// every Unix has them.
func NoUnix(error) bool { return false }

// Reset reports whether err says that the peer went with data unread, or
// closed before a write: a reset connection or a broken pipe.
func Reset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
