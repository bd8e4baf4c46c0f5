package wire_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/shm"
)

// Fuzz targets for every decoder that reads bytes from the bus. `go test`
// runs their seeds; .ci/run also fuzzes each for a few seconds. A crash
// found is fixed, and its input kept in testdata/fuzz.

func seedCalls(f *testing.F) {
	for _, arg := range []any{1, "x", []int{1, 2, 3}, map[string]any{"a": 1.5}, nil, []byte("bytes")} {
		data, err := wire.AppendCall(nil, &wire.Call{Kind: wire.KindCall, Master: "m-1", ID: 7, Function: "sum", ArgType: "[]int", PID: 42}, arg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(wire.AppendCallChunk(nil, &wire.Chunk{Master: "m-1", ID: 3, Index: 0, Count: 2, Total: 10, Data: []byte("01234")}))
	f.Add(wire.AppendRef(nil, wire.ObjectRef{Worker: "w-1", ID: 9, Type: "*main.T"}))
	f.Add([]byte{0x99, 0x02, 0xcc, 0xff})
}

func FuzzCallRoundTrip(f *testing.F) {
	seedCalls(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var c wire.Call
		if err := wire.DecodeCall(data, &c); err != nil {
			if !errors.Is(err, bus.ErrBadPayload) && !errors.Is(err, bus.ErrProtocolVersion) {
				t.Fatalf("an error with no sentinel: %v", err)
			}
			return
		}
		// What decodes encodes again to the same header.
		var back wire.Call
		again, err := wire.AppendCall(nil, &c, nil)
		if err != nil || wire.DecodeCall(again, &back) != nil || back.Master != c.Master || back.ID != c.ID || back.Function != c.Function || back.PID != c.PID {
			t.Fatalf("round trip of %+v: %+v, %v", c, back, err)
		}
	})
}

func FuzzReplyAndChunks(f *testing.F) {
	ok, _ := wire.AppendReply(nil, 5, []int{1, 2})
	f.Add(ok)
	f.Add(wire.AppendErrorReply(nil, 6, &bus.RemoteError{Type: "*errors.errorString", Message: "m", Worker: "w", Sentinels: []string{"bus.ErrPanic"}}))
	f.Add(wire.AppendReplyChunk(nil, &wire.Chunk{ID: 3, Index: 1, Count: 2, Total: 10, Data: []byte("56789")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, raw, remote, err := wire.DecodeReply(data)
		if err == nil && raw == nil && remote == nil {
			t.Fatal("a reply with neither result nor error")
		}
		if remote != nil {
			_ = remote.Error()
			_ = errors.Is(remote, bus.ErrPanic)
		}
		var c wire.Chunk
		wire.DecodeReplyChunk(data, &c)
	})
}

func FuzzUnmarshal(f *testing.F) {
	seedCalls(f)
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // 2^32-1 elements announced
	f.Add([]byte{0xdf, 0x7f, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		var a any
		codec.Unmarshal(data, &a)
		var xs []int
		codec.Unmarshal(data, &xs)
		var m map[string][]string
		codec.Unmarshal(data, &m)
		var s struct {
			A []byte
			B map[int]float64
			C *struct{ D []string }
		}
		codec.Unmarshal(data, &s)
		codec.SplitArray(data, nil)
		codec.DecodeString(data)
		var x int64
		codec.DecodeScalar(data, reflect.ValueOf(&x).Elem())
	})
}

func FuzzReference(f *testing.F) {
	f.Add(wire.AppendRef(nil, wire.ObjectRef{Worker: "w-1", ID: 9, Type: "*main.T"}))
	f.Add([]byte{0xd4, 0x01, 0x00})
	f.Add([]byte{0xc7, 0x20, 0x01, 0x93})
	f.Add(wire.AppendRef(nil, wire.ObjectRef{Worker: "w-1", ID: 9, Type: "*main.T", Holder: "m-1"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := wire.DecodeRef(data)
		if err == nil && !wire.ValidID(r.Worker) {
			t.Fatalf("a reference to worker %q", r.Worker)
		}
		if err == nil && r.Holder != "" && !wire.ValidID(r.Holder) {
			t.Fatalf("a reference passed on by %q", r.Holder)
		}
		if err == nil {
			back, err := wire.DecodeRef(wire.AppendRef(nil, r))
			if err != nil || back != r {
				t.Fatalf("%+v round-trips to %+v, %v", r, back, err)
			}
		}
		wire.RefID(data, "w-1")
		wire.IsRef(data)
	})
}

// FuzzShmReference decodes crafted shared-memory references: none may map
// anything outside a live segment of ours, nor anything that is not one.
// Random names never name a live segment, so each input names one of
// these targets (shmTargets): a live segment mapped in this process, a
// copy of one that only its file holds (opened as another process's
// would be), a file with a segment's name that is no segment, one whose
// header claims more than the file holds, and a name with no file. The
// fuzzer picks the target and mutates the offset, length and nonce of a
// reference to it; and mutates raw bytes too, in which placeholders
// (shmPlaceholder) stand for the targets' names, for the framing around
// them. TestShmReferenceSeedsReach shows that the seeds reach each
// outcome.
func FuzzShmReference(f *testing.F) {
	fx := newShmFixture(f)
	for _, seed := range shmSeeds() {
		f.Add(seed.target, seed.off, seed.n, seed.nonce, seed.raw)
	}
	f.Fuzz(func(t *testing.T, target uint8, off, n, nonce uint64, raw []byte) {
		fx.check(t, shmRef(shmPlaceholder(int(target)%shmTargets), off, n, nonce))
		fx.check(t, raw)
	})
}

// TestShmReferenceSeedsReach runs FuzzShmReference's check on its seeds
// and requires each outcome the fuzz target asserts on to be reached:
// bytes mapped from both live segments, a range refused, and each file
// that is no live segment refused.
func TestShmReferenceSeedsReach(t *testing.T) {
	fx := newShmFixture(t)
	mapped := map[int]int{}
	refused := map[int]error{}
	for _, seed := range shmSeeds() {
		target, err := fx.check(t, shmRef(shmPlaceholder(int(seed.target)), seed.off, seed.n, seed.nonce))
		fx.check(t, seed.raw)
		switch {
		case target >= 0 && err == nil:
			mapped[target]++
		case target >= 0:
			refused[target] = err
		}
	}
	for _, i := range []int{shmMapped, shmCopy} {
		if mapped[i] == 0 {
			t.Errorf("no seed maps bytes of target %d: the fuzz target's byte check is never reached", i)
		}
	}
	if !errors.Is(refused[shmMapped], shm.ErrRange) || !errors.Is(refused[shmCopy], shm.ErrRange) {
		t.Errorf("ranges outside the live segments: %v, %v; want shm.ErrRange", refused[shmMapped], refused[shmCopy])
	}
	for _, i := range []int{shmNotASegment, shmTruncated, shmNoFile} {
		if !errors.Is(refused[i], shm.ErrNoSegment) {
			t.Errorf("a reference to target %d: %v, want shm.ErrNoSegment", i, refused[i])
		}
	}
}

// The targets of FuzzShmReference, by placeholder number.
const (
	shmMapped      = iota // a live segment this process maps
	shmCopy               // a live segment only its file holds
	shmNotASegment        // a file named like a segment, without the magic
	shmTruncated          // a segment's header claiming more than its file
	shmNoFile             // a segment's name with no file
	shmTargets
)

// shmPlaceholder is the name an input uses for target i: as long as a
// segment's name, so that substituting it keeps the framing.
func shmPlaceholder(i int) string {
	return fmt.Sprintf("%s%024x", shm.Prefix, 0xf0+i)
}

// shmRef encodes a reference to segment name, as a sender does.
func shmRef(name string, off, n, nonce uint64) []byte {
	body := codec.AppendStr([]byte{0x94}, name)
	body = codec.AppendUint(body, off)
	body = codec.AppendUint(body, n)
	body = codec.AppendUint(body, nonce)
	return append([]byte{0xc7, byte(len(body)), byte(codec.ShmExtType)}, body...)
}

// Sizes of the live segments' data.
const shmMappedSize, shmCopySize = 300, 5000

// shmSeed is an input of FuzzShmReference: a reference to a target, and
// raw bytes.
type shmSeed struct {
	target        uint8
	off, n, nonce uint64
	raw           []byte
}

func shmSeeds() []shmSeed {
	var seeds []shmSeed
	for i, size := range []uint64{shmMapped: shmMappedSize, shmCopy: shmCopySize} {
		name := shmPlaceholder(i)
		for _, s := range []shmSeed{
			{off: 0, n: size},
			{off: 7, n: 100, raw: shmRef(name, 7, 100, 0)},
			{off: size, n: 0},
			{off: 1, n: size}, // one byte past the end
			{off: size + 1},   // past the end
			{off: 3, n: 20, nonce: 1<<40 + 5, raw: shmRef(name, 0, size, 0)}, // a nonce naming no transit
		} {
			s.target = uint8(i)
			seeds = append(seeds, s)
		}
	}
	seeds = append(seeds,
		shmSeed{target: shmNotASegment, n: 1, raw: []byte{0xc7, 0x05, byte(codec.ShmExtType), 0x94, 0xa1, 'x', 0, 0}},
		shmSeed{target: shmTruncated, n: 1, raw: []byte{0xc4, 0x03, 1, 2, 3}},
		shmSeed{target: shmNoFile, n: 1, raw: []byte{0xc0}},
	)
	return seeds
}

// shmFixture holds the targets of FuzzShmReference.
type shmFixture struct {
	names  [shmTargets]string
	files  map[string][]byte // the files written anew before each input
	seeds  map[string]byte   // a live segment's name: its pattern's seed
	sizes  map[string]int    // a live segment's name: its data's size
	target map[string]int    // a name: its target's number
}

// shmPattern is byte i of a live segment's data, for pattern seed k.
func shmPattern(k byte, i int) byte { return byte(i)*7 + k }

func newShmFixture(tb testing.TB) *shmFixture {
	fx := &shmFixture{files: map[string][]byte{}, seeds: map[string]byte{}, sizes: map[string]int{}, target: map[string]int{}}
	fill := func(size int, k byte) (*shm.Buffer, string) {
		b, err := shm.New(size)
		if err != nil {
			tb.Fatal(err)
		}
		for i := range b.Bytes() {
			b.Bytes()[i] = shmPattern(k, i)
		}
		name, _, _, ok := b.Ref()
		if !ok {
			tb.Fatal("shm.New gave a buffer that is not shared")
		}
		fx.seeds[name], fx.sizes[name] = k, size
		return b, name
	}
	live, name := fill(shmMappedSize, 1)
	tb.Cleanup(func() { live.Close() })
	fx.names[shmMapped] = name

	// The copy: a segment's file under another name, which no Buffer of
	// this process holds. Its creator's slot still names this process, so
	// that closing what an input opened does not unlink it.
	orig, origName := fill(shmCopySize, 2)
	image, err := os.ReadFile(filepath.Join(shm.Dir, origName))
	orig.Close()
	if err != nil {
		tb.Fatal(err)
	}
	randomName := func() string {
		var r [12]byte
		rand.Read(r[:])
		return shm.Prefix + hex.EncodeToString(r[:])
	}
	fx.names[shmCopy] = randomName()
	fx.seeds[fx.names[shmCopy]], fx.sizes[fx.names[shmCopy]] = 2, shmCopySize
	fx.files[fx.names[shmCopy]] = image
	notASegment := slices.Clone(image)
	notASegment[0] ^= 0xff // the magic
	fx.names[shmNotASegment] = randomName()
	fx.files[fx.names[shmNotASegment]] = notASegment
	truncated := slices.Clone(image)
	binary.NativeEndian.PutUint64(truncated[8:], uint64(len(image))) // the data's size, past the file
	fx.names[shmTruncated] = randomName()
	fx.files[fx.names[shmTruncated]] = truncated
	fx.names[shmNoFile] = randomName()
	for i, name := range fx.names {
		fx.target[name] = i
	}
	tb.Cleanup(func() {
		for name := range fx.files {
			os.Remove(filepath.Join(shm.Dir, name))
		}
	})
	return fx
}

// check decodes data, its placeholders replaced by the targets' names,
// as a reference to a Buffer: a Buffer it maps must be a range of a live
// segment, holding that segment's bytes. It returns the target the
// reference named (-1 for none) and the decoding's error.
func (fx *shmFixture) check(t testing.TB, data []byte) (target int, err error) {
	for i, name := range fx.names {
		data = bytes.ReplaceAll(data, []byte(shmPlaceholder(i)), []byte(name))
	}
	for name, image := range fx.files { // as they were: an input may have changed their slots
		if err := os.WriteFile(filepath.Join(shm.Dir, name), image, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	target = -1
	for name, i := range fx.target {
		if bytes.Contains(data, []byte(name)) {
			target = i
		}
	}
	var b *shm.Buffer
	err = codec.Unmarshal(data, &b)
	if err == nil && b != nil && b.Shared() {
		name, off, n, _ := b.Ref()
		size, live := fx.sizes[name]
		if !live || name == fx.names[shmNoFile] {
			t.Fatalf("% x mapped %s, which is no live segment", data, b)
		}
		if off+n > size {
			t.Fatalf("% x mapped bytes [%d, %d) of a segment of %d", data, off, off+n, size)
		}
		for i, c := range b.Bytes() {
			if want := shmPattern(fx.seeds[name], off+i); c != want {
				t.Fatalf("% x mapped %s: byte %d is %d, want %d", data, b, i, c, want)
			}
		}
	}
	if err == nil && b != nil {
		b.Close()
	}
	codec.DropTransits(data)
	codec.HasShm(data)
	return target, err
}

type jsonArg struct {
	Name  string
	Items []int
	Inner *struct{ Score float64 }
	Tags  map[string]bool
}

var fuzzJSON = bus.Register("bus_test.fuzzJSON", func(_ context.Context, a jsonArg) (int, error) { return len(a.Items), nil })

// FuzzJSONCall sends crafted JSON bodies to a function, as the nats CLI
// does: a body that does not fit is ErrArgumentType, never a panic.
func FuzzJSONCall(f *testing.F) {
	f.Add([]byte(`{"Name":"x","Items":[1,2],"Inner":{"Score":1.5},"Tags":{"a":true}}`))
	f.Add([]byte(`{"Items":"no"}`))
	f.Add([]byte(`[`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := lookup(fuzzJSON.Name()).InvokeJSON(context.Background(), body)
		if err != nil && !errors.Is(err, bus.ErrArgumentType) {
			t.Fatalf("%q: an error with no sentinel: %v", body, err)
		}
		if err == nil && n == nil {
			t.Fatalf("%q: no result", body)
		}
	})
}
