package bench

import (
	"context"
	"strings"
	"testing"

	"github.com/processional/processional/internal/wire"
)

// nats_pool_map's raw map gets every item's echo back from a queue
// group of responder processes, and fails, naming the item, when a
// reply is not its item's echo.
func TestRawMapChecksEchoes(t *testing.T) {
	ctx := context.Background()
	e := NewEnv(testBinary(t))
	defer e.Close()
	m, err := e.master(ctx)
	if err != nil {
		t.Fatal(err)
	}
	subject := "bench.pool." + wire.NewID("t")
	for range poolMembers {
		c, _, err := e.startEcho(ctx, subject, "PROCESSIONAL_BENCH_QUEUE=q")
		if err != nil {
			t.Fatal(err)
		}
		defer c.kill()
	}
	// More items than are kept in flight: the window moves on replies.
	_, items, err := poolItems(mapInFlight + 1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rawMap(ctx, m.Conn(), subject, items); err != nil {
		t.Fatal(err)
	}
	// An acknowledging responder answers with an empty message: no echo.
	acker := "bench.ack." + wire.NewID("t")
	c, _, err := e.startEcho(ctx, acker, "PROCESSIONAL_BENCH_ACK=1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.kill()
	if _, err := rawMap(ctx, m.Conn(), acker, items[:10]); err == nil || !strings.Contains(err.Error(), "echoed") {
		t.Fatalf("replies that are no echo: err = %v, want it to name the item", err)
	}
}
