package master_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/processional/processional/embedded"
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
	if _, err := master.New(ctx, master.WithNATS("")); !errors.Is(err, master.ErrConfig) {
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
	for _, d := range []time.Duration{0, -time.Second} {
		if _, err := master.New(ctx, master.WithChildLease(d)); !errors.Is(err, master.ErrConfig) || !strings.Contains(err.Error(), "child lease") {
			t.Errorf("WithChildLease(%s): %v, want ErrConfig naming the child lease", d, err)
		}
	}
}

// TestOptionsThatDoNotApply: an option New, Connect, Spawn or Map would
// ignore where it was given is refused with ErrConfig, naming it.
func TestOptionsThatDoNotApply(t *testing.T) {
	ctx := context.Background()
	srv, err := embedded.Start(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("options_test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	url := srv.URL()

	for _, tc := range []struct {
		name string
		opts []master.Option
		want string
	}{
		{"WithToken on the embedded server", []master.Option{master.WithToken("t")}, "WithToken without WithNATS or WithConn"},
		{"WithUserInfo on the embedded server", []master.Option{master.WithUserInfo("u", "p")}, "WithUserInfo without WithNATS or WithConn"},
		{"WithCredentials on the embedded server", []master.Option{master.WithCredentials("x.creds")}, "WithCredentials without WithNATS or WithConn"},
		{"WithTLS on the embedded server", []master.Option{master.WithTLS("", "", "ca.pem")}, "WithTLS without WithNATS or WithConn"},
		{"WithServerID", []master.Option{master.WithServerID("s")}, "WithServerID is for Connect"},
		{"WithServerID with WithNATS", []master.Option{master.WithNATS(url), master.WithServerID("s")}, "WithServerID is for Connect"},
		{"WithServerLogging with WithNATS", []master.Option{master.WithNATS(url), master.WithServerLogging()}, "WithServerLogging with WithConn or WithNATS"},
		{"WithServerLogging with WithConn", []master.Option{master.WithConn(nc), master.WithServerLogging()}, "WithServerLogging with WithConn or WithNATS"},
		{"WithConn and WithNATS", []master.Option{master.WithConn(nc), master.WithNATS(url)}, "WithConn and WithNATS together"},
	} {
		t.Run("New: "+tc.name, func(t *testing.T) {
			m, err := master.New(ctx, tc.opts...)
			if !errors.Is(err, master.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				if m != nil {
					m.Close()
				}
				t.Fatalf("New: %v, want ErrConfig saying %q", err, tc.want)
			}
		})
	}

	for _, tc := range []struct {
		name string
		opt  master.Option
	}{
		{"WithNATS", master.WithNATS(url)},
		{"WithConn", master.WithConn(nc)},
		{"WithServerLogging", master.WithServerLogging()},
	} {
		t.Run("Connect: "+tc.name, func(t *testing.T) {
			want := tc.name + " does not apply to Connect"
			s, err := master.Connect(ctx, url, master.WithToken(srv.Token()), tc.opt)
			if !errors.Is(err, master.ErrConfig) || !strings.Contains(err.Error(), want) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("Connect: %v, want ErrConfig saying %q", err, want)
			}
		})
	}

	m := newMaster(t) // on its embedded server
	for _, tc := range []struct {
		name string
		opts []master.SpawnOption
		want string
	}{
		{"WithWorkerUserInfo on the embedded server", []master.SpawnOption{master.WithWorkerUserInfo("u", "p")}, "WithWorkerUserInfo on a master with an embedded server"},
		{"WithWorkerCredentials on the embedded server", []master.SpawnOption{master.WithWorkerCredentials("w.creds")}, "WithWorkerCredentials on a master with an embedded server"},
		{"both worker credentials", []master.SpawnOption{master.WithWorkerUserInfo("u", "p"), master.WithWorkerCredentials("w.creds")}, "WithWorkerUserInfo and WithWorkerCredentials together"},
	} {
		t.Run("Spawn: "+tc.name, func(t *testing.T) {
			s, err := m.Spawn(ctx, tc.opts...)
			if !errors.Is(err, master.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				if s != nil {
					s.Terminate()
				}
				t.Fatalf("Spawn: %v, want ErrConfig saying %q", err, tc.want)
			}
		})
	}

	t.Run("Map: InFlight(0)", func(t *testing.T) {
		_, errs := master.Map(ctx, nil, Square, []int{1, 2}, master.InFlight(0))
		for i, err := range errs {
			if !errors.Is(err, master.ErrConfig) || !strings.Contains(err.Error(), "InFlight(0)") {
				t.Fatalf("item %d: %v, want ErrConfig naming InFlight(0)", i, err)
			}
		}
	})
}
