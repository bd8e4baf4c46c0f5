package codec_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/internal/registry"
	"github.com/processional/processional/shm"
)

// receiver is a context that sends to this very process, as a worker of
// this host would be. It lets go of the segments it is handed at once,
// as a sender does once its message is sent.
type receiver struct {
	pid int
	max uint64
}

func (r receiver) ShmReceiver() int         { return r.pid }
func (r receiver) TransientTo() int         { return r.pid }
func (r receiver) MaxValue() uint64         { return r.max }
func (r receiver) Sending(t *shm.Transient) { t.Close() }

func here() receiver { return receiver{pid: os.Getpid(), max: 1 << 30} }

// inDir makes this process's segments live in a directory of the test's
// own, and returns it.
func inDir(t *testing.T, dir string) string {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	old := shm.Dir
	shm.Dir = dir
	t.Cleanup(func() { shm.Dir = old })
	return dir
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

type big struct {
	Name  string
	Data  []byte
	Xs    []float64
	Raw   msgpack.RawMessage
	Table map[string][]int32
}

func bigValue(n int) big {
	v := big{Name: strings.Repeat("n", 1000), Data: make([]byte, n), Xs: make([]float64, n/8), Table: map[string][]int32{"a": {1, 2, 3}}}
	for i := range v.Data {
		v.Data[i] = byte(i * 7)
	}
	for i := range v.Xs {
		v.Xs[i] = float64(i) / 3
	}
	v.Raw, _ = msgpack.Marshal([]string{"raw", "message"})
	return v
}

func TestTransientRoundTrip(t *testing.T) {
	dir := inDir(t, "")
	in := bigValue(1 << 20)
	data, err := codec.AppendValueWith([]byte{0xff}, in, here())
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 100 || data[0] != 0xff {
		t.Fatalf("a %d-byte value was sent in %d bytes, not by reference after the prefix", 1<<20, len(data))
	}
	if got := files(t, dir); len(got) != 1 || !strings.HasPrefix(got[0], shm.Prefix) {
		t.Fatalf("segments in transit: %v, want one", got)
	}
	if !codec.HasShm(data[1:]) {
		t.Error("HasShm does not see the transient segment")
	}
	var out big
	if err := codec.UnmarshalWith(data[1:], &out, nil); err != nil {
		t.Fatal(err)
	}
	// The segment is unmapped and unlinked by now: what was decoded was
	// copied out of it (reading it would fault otherwise).
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("segments left after the decode: %v", got)
	}
	if out.Name != in.Name || !bytes.Equal(out.Data, in.Data) || !slices.Equal(out.Xs, in.Xs) || !bytes.Equal(out.Raw, in.Raw) || !slices.Equal(out.Table["a"], in.Table["a"]) {
		t.Fatal("the value came back different")
	}
	// The buffer it was read into serves the next value: nothing decoded
	// may alias it.
	other := bigValue(1 << 20)
	for i := range other.Data {
		other.Data[i] = ^other.Data[i]
	}
	next, err := codec.AppendValueWith(nil, other, here())
	if err != nil {
		t.Fatal(err)
	}
	var out2 big
	if err := codec.UnmarshalWith(next, &out2, nil); err != nil || !bytes.Equal(out2.Data, other.Data) {
		t.Fatalf("the next value: %v", err)
	}
	if !bytes.Equal(out.Data, in.Data) || !slices.Equal(out.Xs, in.Xs) || !bytes.Equal(out.Raw, in.Raw) {
		t.Fatal("the first value changed with the next one's read: it aliases the read buffer")
	}
	// Decoded twice: the segment is gone, and the error says so.
	err = codec.UnmarshalWith(data[1:], &out, nil)
	if !errors.Is(err, shm.ErrNoSegment) || !strings.Contains(err.Error(), "transient") {
		t.Fatalf("a second decode: %v, want shm.ErrNoSegment naming the transient value", err)
	}
}

func TestTransientTopLevelBytes(t *testing.T) {
	dir := inDir(t, "")
	in := bigValue(1 << 20).Data
	data, err := codec.AppendValueWith(nil, in, here())
	if err != nil || len(data) > 100 {
		t.Fatalf("%d bytes, %v", len(data), err)
	}
	var out []byte
	if err := codec.UnmarshalWith(data, &out, nil); err != nil || !bytes.Equal(out, in) {
		t.Fatalf("%v, equal %v", err, bytes.Equal(out, in))
	}
	var s string
	data, _ = codec.AppendValueWith(nil, string(in), here())
	if err := codec.UnmarshalWith(data, &s, nil); err != nil || s != string(in) {
		t.Fatalf("a string: %v", err)
	}
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("segments left: %v", got)
	}
}

// Below the threshold, to another host, or past the max value, a value
// stays in the message.
func TestTransientStaysInline(t *testing.T) {
	dir := inDir(t, "")
	small := make([]byte, codec.TransientMin-16)
	bigger := make([]byte, codec.TransientMin)
	for _, c := range []struct {
		name string
		v    []byte
		ctx  any
	}{
		{"below the threshold", small, here()},
		{"another host", bigger, receiver{pid: 0, max: 1 << 30}},
		{"past the max value", bigger, receiver{pid: os.Getpid(), max: uint64(len(bigger)) - 1}},
		{"no receiver", bigger, nil},
		{"shared memory buffers only", bigger, shmOnly{}},
	} {
		data, err := codec.AppendValueWith(nil, c.v, c.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) < len(c.v) {
			t.Errorf("%s: sent in %d bytes, want inline", c.name, len(data))
		}
	}
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("segments made: %v", got)
	}
}

// shmOnly is a receiver of buffers by reference, not of transient
// values: a worker on its lane.
type shmOnly struct{}

func (shmOnly) ShmReceiver() int         { return os.Getpid() }
func (shmOnly) TransientTo() int         { return 0 }
func (shmOnly) MaxValue() uint64         { return 1 << 30 }
func (shmOnly) Sending(t *shm.Transient) { t.Close() }

// A value never decoded (a cancelled call, a result nobody reads) lets go
// of its segment, and of the buffers inside it.
func TestTransientDropped(t *testing.T) {
	dir := inDir(t, "")
	buf, err := shm.New(64)
	if err != nil {
		t.Fatal(err)
	}
	in := struct {
		Data []byte
		Buf  *shm.Buffer
	}{make([]byte, 1<<20), buf}
	data, err := codec.AppendValueWith(nil, in, here())
	if err != nil {
		t.Fatal(err)
	}
	buf.Close() // the transit inside the transient segment holds it
	if got := files(t, dir); len(got) != 2 {
		t.Fatalf("segments in transit: %v, want the value's and the buffer's", got)
	}
	codec.DropTransits(data)
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("segments left after DropTransits: %v", got)
	}
}

// A shared-memory buffer inside a transient value arrives mapped, the
// same memory.
func TestTransientCarriesBuffers(t *testing.T) {
	inDir(t, "")
	buf, err := shm.New(64)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	type withBuf struct {
		Data []byte
		Buf  *shm.Buffer
	}
	data, err := codec.AppendValueWith(nil, withBuf{make([]byte, 1<<20), buf}, here())
	if err != nil {
		t.Fatal(err)
	}
	var out withBuf
	if err := codec.UnmarshalWith(data, &out, nil); err != nil {
		t.Fatal(err)
	}
	defer out.Buf.Close()
	buf.Bytes()[3] = 42
	if !out.Buf.Shared() || out.Buf.Bytes()[3] != 42 {
		t.Fatal("the buffer inside the transient value is not the same memory")
	}
}

// A reference to a transient segment that is malformed, gone, or not a
// segment at all fails with an error that says what was wrong.
func TestTransientBadReference(t *testing.T) {
	dir := inDir(t, "")
	ref := func(body []byte) []byte {
		return append([]byte{0xc7, byte(len(body)), byte(codec.TransientExtType)}, body...)
	}
	arr := func(name string, n, nonce uint64) []byte {
		b := codec.AppendStr([]byte{0x93}, name)
		return codec.AppendUint(codec.AppendUint(b, n), nonce)
	}
	live := shm.Prefix + strings.Repeat("ab", 12)
	for _, c := range []struct {
		name string
		data []byte
		want error
		says string
	}{
		{"not an array", ref([]byte{0x01}), registry.ErrBadPayload, "3-element array"},
		{"cut short", ref([]byte{0x93, 0xa5, 'x'}), registry.ErrBadPayload, "transient"},
		{"no bytes", ref(arr(live, 0, 1)), registry.ErrBadPayload, "0 bytes"},
		{"not a segment's name", ref(arr("../../etc/passwd", 10, 1)), shm.ErrNoSegment, "not a processional segment name"},
		{"gone", ref(arr(live, 10, 1)), shm.ErrNoSegment, "unlinked"},
	} {
		var v []byte
		err := codec.UnmarshalWith(c.data, &v, nil)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %v saying %q", c.name, err, c.want, c.says)
		}
	}
	// Longer than its segment: refused, and the segment is let go of.
	data, err := codec.AppendValueWith(nil, make([]byte, 1<<20), here())
	if err != nil {
		t.Fatal(err)
	}
	name := files(t, dir)[0]
	var v []byte
	err = codec.UnmarshalWith(ref(arr(name, 4<<20, 0)), &v, nil)
	if !errors.Is(err, shm.ErrRange) {
		t.Errorf("a reference past its segment: %v, want shm.ErrRange", err)
	}
	codec.DropTransits(data)
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("segments left: %v", got)
	}
}

// A segment of another user is never read.
func TestTransientOtherUser(t *testing.T) {
	proctest.NeedRoot(t, "to give a segment to another user")
	dir := inDir(t, "")
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	data, err := codec.AppendValueWith(nil, make([]byte, 1<<20), here())
	if err != nil {
		t.Fatal(err)
	}
	name := files(t, dir)[0]
	if err := os.Chown(filepath.Join(dir, name), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	var v []byte
	err = codec.UnmarshalWith(data, &v, nil)
	if !errors.Is(err, shm.ErrNoSegment) || !strings.Contains(err.Error(), "another user") {
		t.Fatalf("another user's segment: %v, want shm.ErrNoSegment saying so", err)
	}
	os.Remove(filepath.Join(dir, name))
}

// FuzzTransient decodes arbitrary bytes from a real transient segment:
// never a panic, and the segment is gone afterwards, decoded or not.
func FuzzTransient(f *testing.F) {
	for _, v := range []any{bigValue(64), []float64{1, 2.5}, map[string]any{"a": []int{1, -2}}, "s"} {
		b, _ := codec.Marshal(v)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		if len(content) == 0 {
			return
		}
		dir := inDir(t, "")
		old := codec.TransientMin
		codec.TransientMin = 1
		defer func() { codec.TransientMin = old }()
		data, err := codec.AppendValueWith(nil, msgpack.RawMessage(content), here())
		if err != nil {
			t.Skip("not a value msgpack writes as raw")
		}
		if !bytes.HasPrefix(data, []byte{0xc7}) {
			t.Fatalf("%d bytes not sent by reference", len(content))
		}
		var b big
		var a any
		var xs []float64
		for _, v := range []any{&b, &a, &xs} {
			if err := codec.UnmarshalWith(data, v, nil); errors.Is(err, shm.ErrNoSegment) {
				t.Fatal("the first decode found no segment")
			}
			// Again, for the next type: only the first decode finds it.
			data, _ = codec.AppendValueWith(nil, msgpack.RawMessage(content), here())
		}
		codec.DropTransits(data)
		if got := files(t, dir); len(got) != 0 {
			t.Fatalf("segments left: %v", got)
		}
	})
}
