package builtin_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBuiltins(t *testing.T) {
	ctx := context.Background()
	if n, err := master.Invoke(ctx, master.InCaller, builtin.Sum, []int{1, 2, 3}); n != 6 || err != nil {
		t.Fatalf("sum = %d, %v", n, err)
	}
	if b, err := master.Invoke(ctx, master.InCaller, builtin.Echo, []byte("hi")); string(b) != "hi" || err != nil {
		t.Fatalf("echo = %q, %v", b, err)
	}
	want := sha256.Sum256([]byte("abc"))
	if b, err := master.Invoke(ctx, master.InCaller, builtin.SHA256, []byte("abc")); string(b) != string(want[:]) || err != nil {
		t.Fatalf("sha256 = %x, %v", b, err)
	}
	if _, err := master.Invoke(ctx, master.InCaller, builtin.Sleep, -time.Second); !errors.Is(err, builtin.ErrNegativeSleep) {
		t.Fatalf("negative sleep: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := master.Invoke(sctx, master.InGoroutine, builtin.Sleep, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sleep past the deadline: %v", err)
	}
	if _, err := master.Invoke(ctx, master.InCaller, builtin.Panic, "x"); !errors.Is(err, bus.ErrPanic) {
		t.Fatalf("panic: %v", err)
	}
}
