package wire_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// callBatch builds a call batch of n echo calls from master m-1, ids
// 10, 11…, and returns it with the envelopes it carries.
func callBatch(t testing.TB, n int) ([]byte, [][]byte) {
	var b wire.Batch
	var envs [][]byte
	for i := range n {
		env, err := wire.AppendCall(nil, &wire.Call{Kind: wire.KindCall, Master: "m-1", ID: uint64(10 + i), Function: "echo", ArgType: "int"}, i)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
		b.Add(uint64(10+i), env)
	}
	data := b.AppendCalls(nil, "m-1")
	if len(data) > b.Size()+len("m-1") {
		t.Fatalf("a batch of %d bytes, over the %d Size promised", len(data), b.Size()+len("m-1"))
	}
	return data, envs
}

func TestBatchRoundTrip(t *testing.T) {
	for _, n := range []int{1, 2, 15, 16, 300} {
		data, envs := callBatch(t, n)
		if !wire.IsCallBatch(data) || wire.IsReplyBatch(data) || wire.IsCallChunk(data) {
			t.Fatalf("%d: a call batch not told for one", n)
		}
		var got wire.Received
		if err := wire.DecodeCallBatch(data, &got); err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		if got.Master != "m-1" || len(got.IDs) != n || len(got.Entries) != n {
			t.Fatalf("%d: master %q, %d ids, %d entries", n, got.Master, len(got.IDs), len(got.Entries))
		}
		for i := range n {
			if got.IDs[i] != uint64(10+i) || !bytes.Equal(got.Entries[i], envs[i]) {
				t.Fatalf("%d: entry %d: id %d, %x, want %x", n, i, got.IDs[i], got.Entries[i], envs[i])
			}
			var c wire.Call
			if err := wire.DecodeCall(got.Entries[i], &c); err != nil || c.ID != got.IDs[i] {
				t.Fatalf("entry %d decodes to %+v, %v", i, c, err)
			}
		}
	}

	// Replies the same way, told apart from calls and from a reply.
	var b wire.Batch
	one, _ := wire.AppendReply(nil, 3, "three")
	two := wire.AppendErrorReply(nil, 4, wire.NewRemoteError("w-1", "f", errors.New("no")))
	b.Add(3, one)
	b.Add(4, two)
	data := b.AppendReplies(nil)
	if !wire.IsReplyBatch(data) || wire.IsCallBatch(data) || wire.IsReplyBatch(one) {
		t.Fatal("a reply batch not told for one")
	}
	var got wire.Received
	if err := wire.DecodeReplyBatch(data, &got); err != nil || len(got.Entries) != 2 || !bytes.Equal(got.Entries[1], two) {
		t.Fatalf("%+v, %v", got, err)
	}
	// A reply decoder that meets a batch says so rather than guess.
	if _, _, _, err := wire.DecodeReply(data); !errors.Is(err, bus.ErrBadPayload) {
		t.Fatalf("a batch read as a reply: %v", err)
	}
	b.Reset()
	if b.Len() != 0 || b.Size() != wire.BatchOverhead {
		t.Fatalf("reset: %d envelopes, %d bytes", b.Len(), b.Size())
	}
}

// A batch that is wrong fails with a message that says how, and keeps
// the ids it could read, so that each call can be failed by name.
func TestBatchBadInput(t *testing.T) {
	data, _ := callBatch(t, 3)
	for _, c := range []struct {
		name    string
		data    []byte
		ids     int // ids read
		entries int // envelopes read
		want    string
	}{
		{"cut in its last envelope", data[:len(data)-2], 3, 2, "cut short in envelope 3"},
		{"cut after its ids", data[:bytes.Index(data, []byte{0xdd, 0, 0, 0, 3, 0xc6})+5], 3, 0, "array of 3 elements in 0 bytes"},
		{"cut in its ids", data[:bytes.IndexByte(data, 10)+2], 0, 0, "array of 3 elements in 2 bytes"},
		{"trailing bytes", append(append([]byte(nil), data...), 1, 2), 3, 3, "2 bytes past its last envelope"},
		{"a count that lies", lie(data), 0, 0, "array of"},
		{"empty", (&wire.Batch{}).AppendCalls(nil, "m-1"), 0, 0, "an empty call batch"},
		{"another version", append([]byte{data[0], 0x7f}, data[2:]...), 0, 0, "speaks protocol 127"},
	} {
		var got wire.Received
		err := wire.DecodeCallBatch(c.data, &got)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
			continue
		}
		if !errors.Is(err, bus.ErrBadPayload) && !errors.Is(err, bus.ErrProtocolVersion) {
			t.Errorf("%s: %v wraps no sentinel", c.name, err)
		}
		if len(got.IDs) != c.ids || len(got.Entries) != c.entries {
			t.Errorf("%s: %d ids and %d envelopes read, want %d and %d", c.name, len(got.IDs), len(got.Entries), c.ids, c.entries)
		}
	}
}

// lie makes data's id count claim far more ids than the message holds.
func lie(data []byte) []byte {
	out := append([]byte(nil), data...)
	i := bytes.Index(out, []byte{0xdd, 0, 0, 0, 3})
	copy(out[i+1:], []byte{0x7f, 0xff, 0xff, 0xff})
	return out
}

// FuzzBatch feeds the batch decoders anything: they fail with a sentinel
// and never panic or allocate past the message; what decodes builds
// again to the same bytes.
func FuzzBatch(f *testing.F) {
	data, _ := callBatch(f, 3)
	f.Add(data)
	f.Add(lie(data))
	var b wire.Batch
	one, _ := wire.AppendReply(nil, 3, "three")
	b.Add(3, one)
	f.Add(b.AppendReplies(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, call := range []bool{true, false} {
			var got wire.Received
			var err error
			if call {
				err = wire.DecodeCallBatch(data, &got)
			} else {
				err = wire.DecodeReplyBatch(data, &got)
			}
			if len(got.Entries) > len(got.IDs) || len(got.IDs) > len(data) {
				t.Fatalf("%d envelopes and %d ids from %d bytes", len(got.Entries), len(got.IDs), len(data))
			}
			if err != nil {
				if !errors.Is(err, bus.ErrBadPayload) && !errors.Is(err, bus.ErrProtocolVersion) {
					t.Fatalf("an error with no sentinel: %v", err)
				}
				continue
			}
			if len(got.Entries) != len(got.IDs) {
				t.Fatalf("no error, and %d envelopes for %d ids", len(got.Entries), len(got.IDs))
			}
			var again wire.Batch
			for i, e := range got.Entries {
				again.Add(got.IDs[i], e)
			}
			var back []byte
			if call {
				back = again.AppendCalls(nil, got.Master)
			} else {
				back = again.AppendReplies(nil)
			}
			// The same bytes, but for the shortest forms of numbers and
			// strings, which the builder always writes: decode it again.
			var twice wire.Received
			if call {
				err = wire.DecodeCallBatch(back, &twice)
			} else {
				err = wire.DecodeReplyBatch(back, &twice)
			}
			if err != nil || twice.Master != got.Master || len(twice.Entries) != len(got.Entries) {
				t.Fatalf("built again: %+v, %v", twice, err)
			}
			for i := range twice.Entries {
				if twice.IDs[i] != got.IDs[i] || !bytes.Equal(twice.Entries[i], got.Entries[i]) {
					t.Fatalf("envelope %d differs when built again", i)
				}
			}
		}
	})
}
