package chunks_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func split(msg []byte, size int) []wire.Chunk {
	count := (len(msg) + size - 1) / size
	var out []wire.Chunk
	for i := range count {
		out = append(out, wire.Chunk{ID: 7, Index: uint32(i), Count: uint32(count), Total: uint64(len(msg)), Data: msg[i*size : min((i+1)*size, len(msg))]})
	}
	return out
}

func TestJoin(t *testing.T) {
	msg := bytes.Repeat([]byte("0123456789"), 100)
	cs := split(msg, 64)
	j, err := chunks.Start(&cs[0], 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		done, err := j.Add(&c)
		if err != nil || done != (i == len(cs)-1) {
			t.Fatalf("chunk %d: done %v, %v", i, done, err)
		}
	}
	if !bytes.Equal(j.Bytes(), msg) {
		t.Fatal("joined message differs")
	}
	chunks.PutBuffer(j.Bytes())
}

func TestJoinRefusals(t *testing.T) {
	msg := bytes.Repeat([]byte("x"), 300)
	cs := split(msg, 100)
	for _, tc := range []struct {
		name  string
		limit uint64
		feed  func(j *chunks.Joiner) error
		start *wire.Chunk
		want  error
		sub   string
	}{
		{name: "over the limit", limit: 299, start: &cs[0], want: bus.ErrTooBig, sub: "over the limit of 299"},
		{name: "not the first", limit: 1 << 20, start: &cs[1], want: bus.ErrBadPayload, sub: "chunk 0 missing"},
		{name: "more chunks than bytes", limit: 1 << 20, start: &wire.Chunk{Count: 10, Total: 3}, want: bus.ErrBadPayload, sub: "10 chunks for 3 bytes"},
		{name: "a single chunk", limit: 1 << 20, start: &wire.Chunk{Count: 1, Total: 3}, want: bus.ErrBadPayload},
		{name: "a gap", limit: 1 << 20, start: &cs[0], feed: func(j *chunks.Joiner) error {
			j.Add(&cs[0])
			_, err := j.Add(&cs[2])
			return err
		}, want: bus.ErrWorkerLost, sub: "chunk 1 missing, lost on the way"},
		{name: "twice", limit: 1 << 20, start: &cs[0], feed: func(j *chunks.Joiner) error {
			j.Add(&cs[0])
			_, err := j.Add(&cs[0])
			return err
		}, want: bus.ErrBadPayload, sub: "twice"},
		{name: "another count", limit: 1 << 20, start: &cs[0], feed: func(j *chunks.Joiner) error {
			j.Add(&cs[0])
			c := cs[1]
			c.Count = 4
			_, err := j.Add(&c)
			return err
		}, want: bus.ErrBadPayload, sub: "the first said"},
		{name: "short", limit: 1 << 20, start: &cs[0], feed: func(j *chunks.Joiner) error {
			j.Add(&cs[0])
			j.Add(&cs[1])
			c := cs[2]
			c.Data = c.Data[:10]
			_, err := j.Add(&c)
			return err
		}, want: bus.ErrBadPayload, sub: "announced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := chunks.Start(tc.start, tc.limit)
			if err == nil && tc.feed != nil {
				err = tc.feed(j)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.sub) {
				t.Fatalf("err = %v, want %v saying %q", err, tc.want, tc.sub)
			}
		})
	}
}

// TestJoinTable: Join keeps a table of the joins in progress, by key,
// made at the first join and emptied as each ends, and keeps an error the
// sender did not hear for its next chunk when asked to. A missing chunk
// was lost on the way (bus.ErrWorkerLost), not garbled.
func TestJoinTable(t *testing.T) {
	msg := bytes.Repeat([]byte("x"), 300)
	cs := split(msg, 100)
	gap := func(keep bool) []step {
		return []step{{c: &cs[0]}, {c: &cs[2], keep: keep, err: "chunk 1 missing"}}
	}
	for _, tc := range []struct {
		name  string
		steps []step
		left  int // joins in the table at the end
	}{
		{"whole", []step{{c: &cs[0]}, {c: &cs[1]}, {c: &cs[2], done: true}}, 0},
		{"under way", []step{{c: &cs[0]}, {c: &cs[1]}}, 1},
		{"first chunks missing", []step{{c: &cs[1], err: "chunk 1 of call 7: its first chunks are missing"}}, 0},
		{"over the limit", []step{{c: &cs[0], limit: 299, err: "over the limit of 299"}}, 0},
		{"an error forgotten", append(gap(false), step{c: &cs[1], err: "its first chunks are missing"}), 0},
		{"an error kept", append(gap(true), step{c: &cs[1], keep: true, err: "chunk 1 missing"}), 1},
		{"an error kept, then heard", append(gap(true), step{c: &cs[1], err: "chunk 1 missing"}), 0},
		{"a refused start kept", []step{{c: &cs[0], limit: 1, keep: true, err: "over the limit"}, {c: &cs[1], err: "over the limit"}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var joins map[int]*chunks.Joiner
			for i, st := range tc.steps {
				limit := st.limit
				if limit == 0 {
					limit = 1 << 20
				}
				got, err := chunks.Join(&joins, 1, st.c, limit, st.keep)
				switch {
				case st.err != "" && (!errors.Is(err, bus.ErrBadPayload) && !errors.Is(err, bus.ErrTooBig) && !errors.Is(err, bus.ErrWorkerLost) || !strings.Contains(err.Error(), st.err)):
					t.Fatalf("step %d: err = %v, want one saying %q", i, err, st.err)
				case st.err == "" && err != nil:
					t.Fatalf("step %d: %v", i, err)
				case st.done && !bytes.Equal(got, msg):
					t.Fatalf("step %d: joined %d bytes, want the message", i, len(got))
				case !st.done && got != nil:
					t.Fatalf("step %d: a message of %d bytes before the last chunk", i, len(got))
				}
				if st.done {
					chunks.PutBuffer(got)
				}
			}
			if len(joins) != tc.left {
				t.Fatalf("%d joins left, want %d", len(joins), tc.left)
			}
			if _, err := chunks.Join(&joins, 2, &cs[0], 1<<20, false); err != nil || len(joins) != tc.left+1 {
				t.Fatalf("another key: %v, %d joins", err, len(joins))
			}
		})
	}
}

// step is one chunk fed to Join: done says it ends the message, err what
// its error says.
type step struct {
	c     *wire.Chunk
	limit uint64
	keep  bool
	done  bool
	err   string
}

func TestBuffers(t *testing.T) {
	b := chunks.GetBuffer()
	if len(b) != 0 {
		t.Fatalf("a buffer of %d bytes", len(b))
	}
	big := make([]byte, 0, 2<<20)
	chunks.PutBuffer(big)
	if got := chunks.GetBuffer(); cap(got) < 2<<20 {
		t.Fatalf("the large buffer was not kept: cap %d", cap(got))
	}
}

// FuzzJoin feeds crafted chunk envelopes to a joiner: errors, never a
// panic nor an allocation past the limit.
func FuzzJoin(f *testing.F) {
	f.Add(wire.AppendCallChunk(nil, &wire.Chunk{Master: "m", ID: 1, Index: 0, Count: 2, Total: 6, Data: []byte("abc")}),
		wire.AppendCallChunk(nil, &wire.Chunk{Master: "m", ID: 1, Index: 1, Count: 2, Total: 6, Data: []byte("def")}))
	f.Add([]byte{0x98, 0x02, 0xcc, 0xff}, []byte{})
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var a, b wire.Chunk
		if wire.DecodeCallChunk(first, &a) != nil {
			return
		}
		j, err := chunks.Start(&a, 1<<20)
		if err != nil {
			return
		}
		if done, err := j.Add(&a); err != nil || done {
			return
		}
		if wire.DecodeCallChunk(second, &b) == nil {
			if done, err := j.Add(&b); done && err == nil && uint64(len(j.Bytes())) != a.Total {
				t.Fatalf("joined %d bytes of %d announced", len(j.Bytes()), a.Total)
			}
		}
	})
}
