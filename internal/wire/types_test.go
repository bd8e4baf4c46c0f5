package wire_test

import (
	"strings"
	"testing"

	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/registry"
)

type point struct {
	X, Y  int
	Label string `msgpack:"label"`
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := codec.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lookup(name string) *registry.Function {
	f, ok := registry.Lookup(name)
	if !ok {
		panic("no function " + name)
	}
	return f
}

// wantSubstrings fails t unless s contains every one of subs.
func wantSubstrings(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s %q does not contain %q", what, s, sub)
		}
	}
}
