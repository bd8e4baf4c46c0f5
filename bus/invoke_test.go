package bus_test

import (
	"context"
	"errors"
	"testing"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/registry"
)

func TestInvokeContextAndErrors(t *testing.T) {
	ctx := context.WithValue(context.Background(), ctxKey{}, "through Invoke")
	data, _ := codec.Marshal(struct{}{})
	res, err := desc(t, regCtx.Name()).Invoke(ctx, data, "struct {}")
	if err != nil || res != "through Invoke" {
		t.Fatalf("Invoke = %v, %v: the context did not reach the function", res, err)
	}

	// A function's own error comes back as it is, not as an argument error.
	data, _ = codec.Marshal(7)
	res, err = desc(t, regFail.Name()).Invoke(context.Background(), data, "int")
	if !errors.Is(err, errRegistryTest) || errors.Is(err, bus.ErrArgumentType) {
		t.Fatalf("Invoke err = %v, want the function's own error", err)
	}
	if res != nil {
		t.Errorf("Invoke res = %v with an error, want nil", res)
	}

	// Invoke does not recover either.
	data, _ = codec.Marshal("boom")
	if msg, ok := panicValue(func() { desc(t, regPanic.Name()).Invoke(context.Background(), data, "string") }); !ok || msg != "boom" {
		t.Errorf("Invoke panicked %v with %q, want a panic with \"boom\"", ok, msg)
	}
}

func TestInvokeArgumentType(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fn       *registry.Function
		payload  []byte
		sent     string
		wantSubs []string
	}{
		{"int for string", desc(t, regEcho.Name()), mustMarshal(t, 42), "int",
			[]string{`"bus_test.echo"`, "expects string", "got int"}},
		{"string for []int", desc(t, regSum.Name()), mustMarshal(t, "xs"), "string",
			[]string{`"bus_test.sum"`, "expects []int", "got string"}},
		{"string for struct", desc(t, regShape.Name()), mustMarshal(t, "s"), "string",
			[]string{`"bus_test.shape"`, "expects bus_test.shape", "got string"}},
		{"map for int", desc(t, regDefault.Name()), mustMarshal(t, map[string]int{"a": 1}), "map[string]int",
			[]string{"bus_test.double", "expects int", "got map[string]int"}},
		{"sent type unknown", desc(t, regEcho.Name()), mustMarshal(t, []int{1}), "",
			[]string{`"bus_test.echo"`, "expects string", "got an undecodable value"}},
		{"garbage", desc(t, regEcho.Name()), []byte{0xc1}, "string",
			[]string{`"bus_test.echo"`, "expects string"}},
		{"empty", desc(t, regEcho.Name()), nil, "string",
			[]string{`"bus_test.echo"`, "expects string"}},
		{"truncated", desc(t, regEcho.Name()), mustMarshal(t, "a long enough string")[:5], "string",
			[]string{`"bus_test.echo"`, "expects string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.fn.Invoke(context.Background(), tc.payload, tc.sent)
			if !errors.Is(err, bus.ErrArgumentType) {
				t.Fatalf("Invoke = %v, %v, want an error wrapping ErrArgumentType", res, err)
			}
			if res != nil {
				t.Errorf("res = %v with an error, want nil", res)
			}
			wantSubstrings(t, "error", err.Error(), tc.wantSubs...)
		})
	}
}
