//go:build linux

package chaos

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/shm"
)

// Every result of the load carries its task's id, transformed: a result
// delivered to another task does not match.

// Mix is the answer [Tag] gives for id: a bijection of the id (splitmix64's
// finaliser), so that no two tasks expect the same answer.
func Mix(id uint64) uint64 {
	z := id + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Pattern fills b with bytes derived from id.
func Pattern(id uint64, b []byte) {
	x := id
	for i := 0; i < len(b); i += 8 {
		x = Mix(x)
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(x >> (8 * j))
		}
	}
}

// Reversed returns b's bytes in reverse order, each xored with 0x5a: what
// [Big] answers.
func Reversed(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[len(b)-1-i] = c ^ 0x5a
	}
	return out
}

// TagArg is [Tag]'s argument: a task's id, and how long to sleep first.
type TagArg struct {
	ID    uint64        `msgpack:"id"`
	Sleep time.Duration `msgpack:"sleep"`
}

// ShmArg is [ShmFill]'s argument: a task's id and a shared buffer whose
// first half holds Pattern(id).
type ShmArg struct {
	ID  uint64      `msgpack:"id"`
	Buf *shm.Buffer `msgpack:"buf"`
}

// SeqArg is [Seq]'s argument.
type SeqArg struct {
	ID uint64 `msgpack:"id"`
	N  int    `msgpack:"n"`
}

// ErrForeignBuffer: a shared buffer arrived holding another task's bytes.
var ErrForeignBuffer = bus.RegisterError("chaos.ErrForeignBuffer", errors.New("chaos: the shared buffer holds another task's bytes"))

// Box is a remote object of the load, made by [NewBox].
type Box struct{ ID uint64 }

// Add returns the box's id plus d.
func (b *Box) Add(d uint64) uint64 { return b.ID + d }

var (
	// Tag sleeps (until its context ends) and returns Mix of its id.
	Tag = bus.Register("chaos.tag", func(ctx context.Context, a TagArg) (uint64, error) {
		if a.Sleep > 0 {
			t := time.NewTimer(a.Sleep)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		return Mix(a.ID), nil
	})

	// Big returns its argument reversed and xored with 0x5a: a big value
	// each way.
	Big = bus.Register("chaos.big", func(_ context.Context, b []byte) ([]byte, error) { return Reversed(b), nil })

	// ShmFill checks that the first half of the buffer holds Pattern(id),
	// writes Pattern(^id) into its second half, in place, and returns
	// Mix(id).
	ShmFill = bus.Register("chaos.shmFill", func(_ context.Context, a ShmArg) (uint64, error) {
		if a.Buf == nil {
			return 0, fmt.Errorf("chaos.shmFill: no buffer")
		}
		b := a.Buf.Bytes()
		half := len(b) / 2
		want := make([]byte, half)
		Pattern(a.ID, want)
		for i := range want {
			if b[i] != want[i] {
				return 0, fmt.Errorf("task %x, byte %d: %w", a.ID, i, ErrForeignBuffer)
			}
		}
		Pattern(^a.ID, b[half:])
		// b is valid while its Buffer is reachable: the garbage collector
		// would unmap it under us (a worker crashed so, in the soak).
		runtime.KeepAlive(a.Buf)
		return Mix(a.ID), nil
	})

	// Seq yields Mix(id)+i for i in [0, n).
	Seq = bus.RegisterStream("chaos.seq", func(ctx context.Context, a SeqArg, yield func(uint64) bool) error {
		base := Mix(a.ID)
		for i := range a.N {
			if !yield(base + uint64(i)) {
				return ctx.Err()
			}
		}
		return nil
	})

	// NewBox makes a Box holding the id: a constructor, for master.Wrap.
	NewBox = bus.RegisterConstructor("chaos.newBox", func(_ context.Context, id uint64) (*Box, error) { return &Box{ID: id}, nil })
)
