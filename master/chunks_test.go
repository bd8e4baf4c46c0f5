package master_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
)

// Size returns the length of its argument; Fill returns n bytes.
var (
	Size = bus.Register("test.size", func(ctx context.Context, b []byte) (int, error) { return len(b), nil })
	Fill = bus.Register("test.fill", func(ctx context.Context, n int) ([]byte, error) {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b, nil
	})
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestChunkedValues(t *testing.T) {
	ctx := context.Background()
	// A long lease: under the race detector, moving 50 MB through the
	// embedded server takes seconds, during which heartbeats wait behind
	// the chunks (chunks count as signs of life, but arrive slowly too).
	m, err := master.New(ctx, master.WithLease(10*time.Second, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { chunkedValues(t, m, spawn(t, m, path.opts...)) })
	}
}

// paths are the roads to a spawned worker: its lane; NATS; and NATS as
// to another host (another shm.Domain), where a big value goes in
// chunks. On the first two, a big value goes in a transient segment.
var paths = []struct {
	name   string
	opts   []master.SpawnOption
	remote bool
}{
	{"lane", nil, false},
	{"nats", []master.SpawnOption{master.WithoutLane()}, false},
	{"remote", []master.SpawnOption{master.WithoutLane(), master.WithEnv("PROCESSIONAL_SHM_DOMAIN=another-host")}, true},
}

func chunkedValues(t *testing.T, m *master.Master, s *master.Slave) {
	ctx := context.Background()
	max := int(m.Conn().MaxPayload())
	for _, n := range []int{max - 1000, max - 100, max, max + 1, 3*max + 17, 50 << 20} {
		got, err := master.Invoke(ctx, s, Size, make([]byte, n))
		if err != nil || got != n {
			t.Fatalf("an argument of %d bytes: %d, %v", n, got, err)
		}
		back, err := master.Invoke(ctx, s, Fill, n)
		if err != nil || !bytes.Equal(back, pattern(n)) {
			t.Fatalf("a result of %d bytes: %d bytes back, %v", n, len(back), err)
		}
		echo, err := master.Invoke(ctx, s, builtin.Echo, pattern(n))
		if err != nil || !bytes.Equal(echo, pattern(n)) {
			t.Fatalf("an echo of %d bytes: %d bytes back, %v", n, len(echo), err)
		}
	}
	// Order holds across a chunked call.
	a := master.Schedule(ctx, s, Append, 1)
	big := master.Schedule(ctx, s, Size, make([]byte, 5*max))
	b := master.Schedule(ctx, s, Append, 2)
	if _, err := big.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	order, err := b.Wait(ctx)
	if _, aerr := a.Wait(ctx); aerr != nil || err != nil || len(order) < 2 || order[len(order)-2] != 1 || order[len(order)-1] != 2 {
		t.Fatalf("order %v, %v", order, err)
	}
}

// argFor returns the size of a []byte argument of Size whose call
// envelope is exactly msg bytes, as the master sends it.
func argFor(t *testing.T, m *master.Master, msg int) int {
	t.Helper()
	for n := msg - 64; n <= msg; n++ {
		data, err := wire.AppendCall(nil, &wire.Call{Kind: wire.KindCall, Master: m.ID(), ID: 1, Function: Size.Name(), ArgType: "[]uint8", PID: uint32(os.Getpid())}, make([]byte, n))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) == msg {
			return n
		}
	}
	t.Fatalf("no argument makes a call of %d bytes", msg)
	return 0
}

// The call envelope one byte under, at, and one byte over the server's max
// payload: whole, whole, and in chunks.
func TestChunkBoundaries(t *testing.T) {
	m := newMaster(t)
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) { chunkBoundaries(t, m, spawn(t, m, path.opts...)) })
	}
}

func chunkBoundaries(t *testing.T, m *master.Master, s *master.Slave) {
	ctx := context.Background()
	max := int(m.Conn().MaxPayload())
	for _, msg := range []int{max - 1, max, max + 1} {
		n := argFor(t, m, msg)
		if got, err := master.Invoke(ctx, s, Size, pattern(n)); err != nil || got != n {
			t.Fatalf("a call of %d bytes (max payload %d): %d, %v", msg, max, got, err)
		}
		// The result's envelope is smaller than the call's: some bytes
		// more give one as near the boundary.
		if back, err := master.Invoke(ctx, s, Fill, n+24); err != nil || !bytes.Equal(back, pattern(n+24)) {
			t.Fatalf("a result of %d bytes: %d bytes back, %v", n+24, len(back), err)
		}
	}
}

func TestValueLimit(t *testing.T) {
	ctx := context.Background()
	m, err := master.New(ctx, master.WithMaxValue(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s, err := m.Spawn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = master.Invoke(ctx, s, Size, make([]byte, 5<<20))
	if !errors.Is(err, bus.ErrTooBig) || !strings.Contains(err.Error(), "over the limit of 4194304") || !strings.Contains(err.Error(), "524") {
		t.Fatalf("an argument over the limit: %v", err)
	}
	// The worker got the master's limit: a result over it fails too.
	_, err = master.Invoke(ctx, s, Fill, 5<<20)
	if !errors.Is(err, bus.ErrTooBig) || !strings.Contains(err.Error(), "over the limit of 4194304") {
		t.Fatalf("a result over the limit: %v", err)
	}
	if n, err := master.Invoke(ctx, s, Size, make([]byte, 3<<20)); err != nil || n != 3<<20 {
		t.Fatalf("under the limit: %d, %v", n, err)
	}
}

func TestChunkedToDyingWorker(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()
	start := time.Now()
	kill := time.AfterFunc(30*time.Millisecond, func() { s.Terminate() })
	defer kill.Stop()
	_, err := master.Invoke(ctx, s, Size, make([]byte, 300<<20))
	if err == nil && time.Since(start) < 30*time.Millisecond {
		t.Skip("the transfer finished before the kill")
	}
	if !errors.Is(err, bus.ErrWorkerLost) {
		t.Fatalf("a transfer cut by a dying worker: %v", err)
	}
}

// BigError fails with a message of n bytes.
var BigError = bus.Register("test.bigError", func(ctx context.Context, n int) (int, error) {
	return 0, errors.New("big: " + strings.Repeat("e", n))
})

// An error over the server's max payload still reaches its caller,
// whole: in chunks, as a result that big goes. (Its reply was refused by
// the client, and the call waited for its deadline.)
func TestBigError(t *testing.T) {
	ctx := context.Background()
	m, err := master.New(ctx, master.WithLease(10*time.Second, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const n = 3 << 20 // over the embedded server's 1 MB
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			s := spawn(t, m, path.opts...)
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			_, err := master.Invoke(ctx, s, BigError, n)
			var re *bus.RemoteError
			if !errors.As(err, &re) || len(re.Message) != n+len("big: ") {
				t.Fatalf("a %d-byte error: %.200v", n, err)
			}
		})
	}
}
