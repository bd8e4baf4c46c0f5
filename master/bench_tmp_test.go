package master_test

import (
	"context"
	"testing"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/master"
)

func BenchmarkTmpProxy(b *testing.B) {
	ctx := context.Background()
	m, _ := master.New(ctx)
	defer m.Close()
	s, _ := m.Spawn(ctx)
	defer s.Close()
	r, _ := master.Wrap(ctx, s, builtin.NewCounter, 0)
	defer r.Close()
	var tp, ti time.Duration
	for range 20 {
		t0 := time.Now()
		for range 500 {
			master.Method[int64](ctx, r, "Add", 1).Wait(ctx)
		}
		tp += time.Since(t0)
		t0 = time.Now()
		for range 500 {
			master.Invoke(ctx, s, builtin.Echo, []byte("0123456789abcdef0123456789abcdef"))
		}
		ti += time.Since(t0)
	}
	b.Logf("proxy %v/op invoke %v/op", tp/10000, ti/10000)
}
