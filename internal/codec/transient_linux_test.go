//go:build linux

package codec_test

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/proctest"
)

// /dev/shm full: the value goes in the message, and nothing is left.
func TestTransientFullFallsBack(t *testing.T) {
	proctest.NeedRoot(t, "to mount a small tmpfs")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=1777"); err != nil {
		t.Fatalf("root cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	inDir(t, dir)
	in := bigValue(2 << 20).Data
	data, err := codec.AppendValueWith(nil, in, here())
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < len(in) {
		t.Fatalf("sent in %d bytes with /dev/shm full, want inline", len(data))
	}
	var out []byte
	if err := codec.UnmarshalWith(data, &out, nil); err != nil || !bytes.Equal(out, in) {
		t.Fatalf("%v", err)
	}
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("segments left: %v", got)
	}
}
