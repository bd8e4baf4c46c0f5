package master_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/processional/processional/master"
)

func TestBadOptions(t *testing.T) {
	m := newMaster(t)
	ctx := context.Background()
	const idRule = "want 1 to 64 letters, digits, '-' or '_'"
	for _, tc := range []struct {
		name string
		opt  master.SpawnOption
		want string // in the error
	}{
		{"empty binary", master.WithBinary(""), "binary"},
		{"bad id", master.WithID("has.a.dot"), `worker id "has.a.dot": ` + idRule},
		{"empty id", master.WithID(""), `worker id "": ` + idRule},
		{"bad pool name", master.InPool("a pool"), `pool name "a pool": ` + idRule},
		{"zero start timeout", master.WithStartTimeout(0), "start timeout"},
		{"env entry without =", master.WithEnv("NOEQUALS"), "NOEQUALS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.Spawn(ctx, tc.opt); !errors.Is(err, master.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrConfig saying %q", err, tc.want)
			}
		})
	}
	if _, err := m.Pool(ctx, "a.pool"); !errors.Is(err, master.ErrConfig) || !strings.Contains(err.Error(), `pool name "a.pool": `+idRule) {
		t.Fatalf("Pool(\"a.pool\"): err = %v, want ErrConfig stating the id rule", err)
	}
	if _, err := master.Connect(ctx, "127.0.0.1:1", master.WithServerID("a.server")); !errors.Is(err, master.ErrConfig) || !strings.Contains(err.Error(), `server id "a.server": `+idRule) {
		t.Fatalf("WithServerID(\"a.server\"): err = %v, want ErrConfig stating the id rule", err)
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
