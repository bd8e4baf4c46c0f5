package worker_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/shm"
	"github.com/processional/processional/worker"
)

var _ = bus.Register("worker_test.shmLen", func(ctx context.Context, b *shm.Buffer) (int, error) { return b.Len(), nil })

// shmRef is a crafted shared-memory reference: the extension
// [segment, offset, length, nonce].
func shmRef(t *testing.T, name string, off, n uint64) msgpack.RawMessage {
	t.Helper()
	body, err := msgpack.Marshal([]any{name, off, n, uint64(0)})
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{0xc7, byte(len(body)), byte(codec.ShmExtType)}, body...)
}

func TestCraftedShmReferences(t *testing.T) {
	h := start(t)
	real, err := shm.New(64)
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	name, _, _, _ := real.Ref()
	for _, tc := range []struct {
		desc string
		arg  msgpack.RawMessage
		want error
		subs []string
	}{
		{"a segment that does not exist", shmRef(t, shm.Prefix+"000000000000000000000000", 0, 8), shm.ErrNoSegment, []string{"unlinked"}},
		{"a name that is not a segment's", shmRef(t, "../../etc/passwd", 0, 8), shm.ErrNoSegment, []string{"not a processional segment name"}},
		{"an offset past the end", shmRef(t, name, 65, 0), shm.ErrRange, []string{"which has 64"}},
		{"a length past the end", shmRef(t, name, 8, 57), shm.ErrRange, []string{"which has 64"}},
		{"a huge length", shmRef(t, name, 0, 1<<62), shm.ErrRange, nil},
		{"an offset over an int", shmRef(t, name, 1<<63, 1), shm.ErrRange, nil},
		{"a truncated extension", msgpack.RawMessage{0xc7, 40, byte(codec.ShmExtType), 0x94}, bus.ErrArgumentType, []string{"EOF"}},
		{"another extension", msgpack.RawMessage{0xd4, 9, 0}, bus.ErrArgumentType, nil},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, re := h.call(t, wire.Call{ID: 1, Function: "worker_test.shmLen"}, tc.arg)
			if re == nil || !errors.Is(re, tc.want) {
				t.Fatalf("reply %v, want %v", re, tc.want)
			}
			for _, s := range tc.subs {
				if !strings.Contains(re.Error(), s) {
					t.Errorf("%q does not say %q", re, s)
				}
			}
		})
	}
	// A well-formed reference works, and the worker survived the rest.
	raw, re := h.call(t, wire.Call{ID: 2, Function: "worker_test.shmLen"}, shmRef(t, name, 8, 16))
	var n int
	if re != nil || codec.Unmarshal(raw, &n) != nil || n != 16 {
		t.Fatalf("a good reference: %v, %v", n, re)
	}
}

// chunk builds the envelope of chunk index of count of a call of total
// bytes from master.
func chunk(id uint64, index, count uint32, total uint64, data []byte) []byte {
	return wire.AppendCallChunk(nil, &wire.Chunk{Master: master, ID: id, Index: index, Count: count, Total: total, Data: data})
}

func TestBadChunkStreams(t *testing.T) {
	h := start(t, worker.WithMaxValue(1<<20))
	whole := encodeCall(t, wire.Call{Kind: wire.KindCall, Master: master, ID: 9, Function: "worker_test.echo", ArgType: "string"}, strings.Repeat("x", 300))
	third := len(whole) / 3
	parts := [][]byte{whole[:third], whole[third : 2*third], whole[2*third:]}
	total := uint64(len(whole))
	ack := func(t *testing.T, data []byte) *bus.RemoteError {
		t.Helper()
		msg, err := h.nc.Request(h.subject(), data, timeout)
		if err != nil {
			t.Fatal(err)
		}
		if len(msg.Data) == 0 {
			return nil
		}
		_, _, re, err := wire.DecodeReply(msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		return re
	}
	t.Run("a missing chunk", func(t *testing.T) {
		h.nc.Publish(h.subject(), chunk(11, 0, 3, total, parts[0]))
		re := ack(t, chunk(11, 2, 3, total, parts[2]))
		if !errors.Is(re, bus.ErrWorkerLost) || !strings.Contains(re.Error(), "chunk 1 missing, lost on the way") {
			t.Fatalf("ack: %v", re)
		}
	})
	t.Run("a chunk twice", func(t *testing.T) {
		h.nc.Publish(h.subject(), chunk(12, 0, 3, total, parts[0]))
		h.nc.Publish(h.subject(), chunk(12, 1, 3, total, parts[1]))
		re := ack(t, chunk(12, 1, 3, total, parts[1]))
		if !errors.Is(re, bus.ErrBadPayload) || !strings.Contains(re.Error(), "arrived twice") {
			t.Fatalf("ack: %v", re)
		}
	})
	t.Run("first chunks missing", func(t *testing.T) {
		re := ack(t, chunk(13, 1, 3, total, parts[1]))
		if !errors.Is(re, bus.ErrWorkerLost) || !strings.Contains(re.Error(), "first chunks are missing, lost on the way") {
			t.Fatalf("ack: %v", re)
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		re := ack(t, chunk(14, 0, 3, 2<<20, parts[0]))
		if !errors.Is(re, bus.ErrTooBig) || !strings.Contains(re.Error(), "over the limit of 1048576") {
			t.Fatalf("ack: %v", re)
		}
	})
	t.Run("more data than announced", func(t *testing.T) {
		h.nc.Publish(h.subject(), chunk(15, 0, 2, 10, parts[0][:8]))
		re := ack(t, chunk(15, 1, 2, 10, parts[1]))
		if !errors.Is(re, bus.ErrBadPayload) || !strings.Contains(re.Error(), "overflows") {
			t.Fatalf("ack: %v", re)
		}
	})
	t.Run("a malformed chunk", func(t *testing.T) {
		bad := chunk(16, 0, 2, total, parts[0])
		binary.BigEndian.PutUint32(bad[len(bad)-len(parts[0])-4:], 1<<30) // announces more data than it has
		re := ack(t, bad)
		if !errors.Is(re, bus.ErrBadPayload) {
			t.Fatalf("ack: %v", re)
		}
	})
	t.Run("a good stream", func(t *testing.T) {
		replies := make(chan *nats.Msg, 1)
		sub, err := h.nc.ChanSubscribe(wire.ReplySubject(master, h.id), replies)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		for i, p := range parts {
			data := chunk(9, uint32(i), 3, total, p)
			if i < 2 {
				h.nc.Publish(h.subject(), data)
				continue
			}
			if re := ack(t, data); re != nil {
				t.Fatalf("ack of the last chunk: %v", re)
			}
		}
		select {
		case msg := <-replies:
			id, raw, re, err := wire.DecodeReply(msg.Data)
			var got string
			if err != nil || re != nil || id != 9 || codec.Unmarshal(raw, &got) != nil || got != strings.Repeat("x", 300) {
				t.Fatalf("the joined call's reply: id %d, %v, %v", id, re, err)
			}
		case <-time.After(timeout):
			t.Fatal("no reply to the joined call")
		}
	})
}
