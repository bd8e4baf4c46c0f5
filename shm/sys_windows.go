//go:build windows

package shm

import (
	"errors"
	"fmt"
)

// On Windows, shm buffers work by copy: New returns a Buffer in ordinary
// memory (Shared() false), which crosses to a worker as its bytes, as to
// another host; no Windows process shares a Domain with another, so
// nothing is ever sent by reference, and big values go in the message.
// A reference that arrives all the same (a crafted one) fails with
// ErrNoSegment, wrapping errors.ErrUnsupported.

// mappable: no segments here.
const mappable = false

// errNoMapping is what a reference to a segment meets on Windows.
var errNoMapping = fmt.Errorf("%w: shared-memory segments on windows", errors.ErrUnsupported)

func defaultDir() string { return "" }

func create(int) (*segment, error) { return nil, errNoMapping }

func release(*segment) {}

func openSegment(name string, _ uint64) (*segment, error) {
	return nil, fmt.Errorf("%w: %s: %w", ErrNoSegment, name, errNoMapping)
}

// startTime: no segment records a Windows process.
func startTime(int) uint64 { return 0 }

// Sweep has nothing to sweep on Windows.
func Sweep() (int, error) { return 0, nil }

// domain: Windows processes share no segments, so none shares a Domain.
func domain() string { return "" }

// SendTransient: no transient segments on Windows; the value stays in the
// message.
func SendTransient([]byte, int) (*Transient, string, uint64, error) {
	return nil, "", 0, errNoMapping
}

// ReceiveTransient: a reference to a transient segment cannot be read on
// Windows.
func ReceiveTransient(name string, _ int, _ uint64, _ []byte) ([]byte, error) {
	return nil, fmt.Errorf("%w: %s: %w", ErrNoSegment, name, errNoMapping)
}
