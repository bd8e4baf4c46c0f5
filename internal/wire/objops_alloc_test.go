//go:build !race

package wire_test

import (
	"testing"

	"github.com/processional/processional/internal/codec"
)

// TestCallOpAppendAllocs: a method call's argument appends itself, target
// and scalar arguments, with no allocation: it is on every call's path.
// (The race detector makes sync.Pool drop items, hence the build tag.)
func TestCallOpAppendAllocs(t *testing.T) {
	tg := &target{ref: opRef, seen: make([]any, 0, 1000)}
	var arg any = &sentCall{Target: tg, Method: "Add", Args: []any{1, "x"}}
	buf := make([]byte, 0, 512)
	n := testing.AllocsPerRun(200, func() {
		if _, err := codec.AppendValueWith(buf[:0], arg, "ctx"); err != nil {
			t.Fatal(err)
		}
	})
	if n >= 1 {
		t.Fatalf("appending a call's argument allocates %.1f times, want none", n)
	}
}
