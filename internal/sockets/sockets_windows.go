//go:build windows

package sockets

import (
	"errors"

	"golang.org/x/sys/windows"
)

// Refused reports whether err is a connection refused: no one listens.
func Refused(err error) bool { return errors.Is(err, windows.WSAECONNREFUSED) }

// NoUnix reports whether err says that this Windows has no AF_UNIX
// sockets (before Windows 10 1803).
func NoUnix(err error) bool {
	return errors.Is(err, windows.WSAEAFNOSUPPORT) || errors.Is(err, windows.WSAEPROTONOSUPPORT) || errors.Is(err, windows.WSAESOCKTNOSUPPORT)
}

// Reset reports whether err says that the peer went with data unread, or
// closed before a write: a reset or aborted connection.
func Reset(err error) bool {
	return errors.Is(err, windows.WSAECONNRESET) || errors.Is(err, windows.WSAECONNABORTED) || errors.Is(err, windows.WSAESHUTDOWN)
}
