package master_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
	"github.com/processional/processional/shm"
)

// Frame nests buffers in a struct, a map and a slice.
type Frame struct {
	Name   string
	Pixels *shm.Buffer
	Planes map[string]*shm.Buffer
	Extra  []*shm.Buffer
}

type FrameInfo struct {
	Sum    int
	Shared []bool
	PID    int
}

var (
	// Brighten sums the bytes of every buffer of the frame, then adds 1 to
	// each byte, in place.
	Brighten = bus.Register("test.brighten", func(ctx context.Context, f Frame) (FrameInfo, error) {
		info := FrameInfo{PID: os.Getpid()}
		all := []*shm.Buffer{f.Pixels}
		for _, k := range []string{"r", "g"} {
			all = append(all, f.Planes[k])
		}
		all = append(all, f.Extra...)
		for _, b := range all {
			info.Shared = append(info.Shared, b.Shared())
			for i, x := range b.Bytes() {
				info.Sum += int(x)
				b.Bytes()[i] = x + 1
			}
		}
		return info, nil
	})
	// Ramp returns a new buffer of n float64 0, 1, 2…
	Ramp = bus.Register("test.ramp", func(ctx context.Context, n int) (*shm.Buffer, error) {
		b, v, err := shm.Make[float64](n)
		if err != nil {
			return nil, err
		}
		for i := range v {
			v[i] = float64(i)
		}
		return b, nil
	})
)

// segments lists the processional segments in /dev/shm.
func segments(t *testing.T) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(shm.Dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), shm.Prefix) {
			out[e.Name()] = true
		}
	}
	return out
}

func newFrame(t *testing.T) (Frame, []*shm.Buffer) {
	t.Helper()
	whole, err := shm.New(64)
	if err != nil {
		t.Fatal(err)
	}
	for i := range whole.Bytes() {
		whole.Bytes()[i] = 1
	}
	r, _ := whole.Slice(0, 16)
	g, _ := whole.Slice(16, 32)
	extra, err := shm.New(8)
	if err != nil {
		t.Fatal(err)
	}
	f := Frame{Name: "f", Pixels: whole, Planes: map[string]*shm.Buffer{"r": r, "g": g}, Extra: []*shm.Buffer{extra, shm.FromBytes([]byte{5, 5})}}
	return f, []*shm.Buffer{whole, r, g, extra}
}

// gone checks that the segments of bufs were unlinked.
func gone(t *testing.T, names []string) {
	t.Helper()
	now := segments(t)
	for _, n := range names {
		if now[n] {
			t.Errorf("segment %s left in %s", n, shm.Dir)
		}
	}
}

func names(bufs ...*shm.Buffer) []string {
	var out []string
	for _, b := range bufs {
		if n, _, _, ok := b.Ref(); ok {
			out = append(out, n)
		}
	}
	return out
}

func TestShmByReference(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()
	f, bufs := newFrame(t)
	info, err := master.Invoke(ctx, s, Brighten, f)
	if err != nil {
		t.Fatal(err)
	}
	// The planes are slices of the pixels: the worker sees its own writes
	// through them.
	if info.Sum != 64+2*16+2*16+0+10 || info.PID != s.PID() {
		t.Fatalf("info %+v", info)
	}
	want := []bool{true, true, true, true, false}
	for i, w := range want {
		if info.Shared[i] != w {
			t.Fatalf("shared on the worker: %v, want %v", info.Shared, want)
		}
	}
	// The worker wrote into the same memory.
	if b := f.Pixels.Bytes(); b[0] != 3 || b[20] != 3 || b[40] != 2 {
		t.Fatalf("after the call the frame holds %v", b[:48])
	}
	// A result buffer comes back by reference too.
	r, err := master.Invoke(ctx, s, Ramp, 1000)
	if err != nil {
		t.Fatal(err)
	}
	v, err := shm.View[float64](r)
	if err != nil || !r.Shared() || v[999] != 999 {
		t.Fatalf("ramp: shared %v, %v, %v", r.Shared(), err, v[len(v)-1])
	}
	created := names(append(bufs, r)...)
	r.Close()
	for _, b := range bufs {
		b.Close()
	}
	s.Close()
	gone(t, created)
}

func TestShmCopiedAcrossDomains(t *testing.T) {
	m := newMaster(t)
	ctx := context.Background()
	s, err := m.Spawn(ctx, master.WithEnv("PROCESSIONAL_SHM_DOMAIN=another-host"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Terminate()
	f, bufs := newFrame(t)
	info, err := master.Invoke(ctx, s, Brighten, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range info.Shared {
		if sh {
			t.Fatalf("a buffer arrived shared on another domain: %v", info.Shared)
		}
	}
	if info.Sum != 64+16+16+0+10 {
		t.Fatalf("sum %d", info.Sum)
	}
	if b := f.Pixels.Bytes(); b[0] != 1 {
		t.Fatalf("a copy's writes reached the master's memory: %v", b[:4])
	}
	r, err := master.Invoke(ctx, s, Ramp, 10)
	if err != nil {
		t.Fatal(err)
	}
	v, err := shm.View[float64](r)
	if err != nil || r.Shared() || v[9] != 9 {
		t.Fatalf("ramp from another domain: shared %v, %v, %v", r.Shared(), err, v)
	}
	created := names(bufs...)
	for _, b := range bufs {
		b.Close()
	}
	s.Close()
	gone(t, created)
}

func TestShmClosedBuffer(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	b, err := shm.New(8)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	_, err = master.Invoke(context.Background(), s, Brighten, Frame{Pixels: b})
	if !errors.Is(err, shm.ErrClosed) || !errors.Is(err, bus.ErrEncode) {
		t.Fatalf("a closed buffer in an argument: %v", err)
	}
}
