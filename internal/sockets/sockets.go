// Package sockets says what a socket error means, the same on every
// system: Windows names its errors otherwise (WSAECONNREFUSED is not
// syscall.ECONNREFUSED there).
package sockets
