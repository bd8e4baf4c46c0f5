package master_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/master"
)

// Transients returns how many values the worker has sent and received in
// transient segments.
var Transients = bus.Register("test.transients", func(ctx context.Context, _ struct{}) ([2]uint64, error) {
	sent, received := codec.TransientCounts()
	return [2]uint64{sent, received}, nil
})

// A big argument and a big result to a worker of this host go in
// transient segments by NATS; on the lane, in its frames (one costs less
// than a segment at every size); as to another host, in the message.
func TestTransientRoads(t *testing.T) {
	ctx := context.Background()
	m := newMaster(t)
	n := codec.TransientMin + 1000
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			s := spawn(t, m, path.opts...)
			sent, received := codec.TransientCounts()
			if got, err := master.Invoke(ctx, s, Size, pattern(n)); err != nil || got != n {
				t.Fatalf("an argument of %d bytes: %d, %v", n, got, err)
			}
			if back, err := master.Invoke(ctx, s, Fill, n); err != nil || !bytes.Equal(back, pattern(n)) {
				t.Fatalf("a result of %d bytes: %d bytes back, %v", n, len(back), err)
			}
			if back, err := master.Invoke(ctx, s, builtin.Echo, pattern(n)); err != nil || !bytes.Equal(back, pattern(n)) {
				t.Fatalf("an echo of %d bytes: %d bytes back, %v", n, len(back), err)
			}
			// A small value stays in the message.
			if got, err := master.Invoke(ctx, s, Size, pattern(100)); err != nil || got != 100 {
				t.Fatalf("a small argument: %d, %v", got, err)
			}
			sent2, received2 := codec.TransientCounts()
			w, err := master.Invoke(ctx, s, Transients, struct{}{})
			if err != nil {
				t.Fatal(err)
			}
			want := [2]uint64{2, 2} // the worker's: two results sent, two arguments received
			if path.remote || path.name == "lane" {
				want = [2]uint64{}
			}
			if sent2-sent != want[0] || received2-received != want[1] || w != [2]uint64{want[1], want[0]} {
				t.Fatalf("transient values: the master sent %d and received %d, the worker sent %d and received %d; want %v and %v", sent2-sent, received2-received, w[0], w[1], want, [2]uint64{want[1], want[0]})
			}
		})
	}
}
