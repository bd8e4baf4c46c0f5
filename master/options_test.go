package master_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/processional/processional/master"
)

func TestBadOptions(t *testing.T) {
	m := newMaster(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opt  master.SpawnOption
	}{
		{"empty binary", master.WithBinary("")},
		{"bad id", master.WithID("has.a.dot")},
		{"empty id", master.WithID("")},
		{"zero start timeout", master.WithStartTimeout(0)},
		{"env entry without =", master.WithEnv("NOEQUALS")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.Spawn(ctx, tc.opt); !errors.Is(err, master.ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
	if _, err := master.New(ctx, master.WithNATS("", "")); !errors.Is(err, master.ErrConfig) {
		t.Fatalf("WithNATS(\"\"): err = %v, want ErrConfig", err)
	}
	if _, err := m.Spawn(ctx, master.WithBinary("/nonexistent/worker")); !errors.Is(err, master.ErrSpawn) {
		t.Fatalf("missing binary: err = %v, want ErrSpawn", err)
	}
}

func TestLeaseOption(t *testing.T) {
	ctx := context.Background()
	for _, tc := range [][2]time.Duration{{0, 0}, {time.Second, 0}, {time.Second, time.Second}, {time.Second, 2 * time.Second}, {-time.Second, time.Millisecond}} {
		if _, err := master.New(ctx, master.WithLease(tc[0], tc[1])); !errors.Is(err, master.ErrConfig) {
			t.Errorf("WithLease(%s, %s): %v, want ErrConfig", tc[0], tc[1], err)
		}
	}
}
