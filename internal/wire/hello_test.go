package wire_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/registry"
	"github.com/processional/processional/internal/wire"
)

func validConfig() wire.WorkerConfig {
	return wire.WorkerConfig{
		URL:     "nats://127.0.0.1:4222",
		Token:   "s3cr=t \"quoted\"",
		Worker:  "w-abc",
		Master:  "m-def",
		Hello:   wire.HelloSubject("m-def", "w-abc"),
		Version: wire.Version(),
	}
}

// setEnvEntry sets the variable of an entry "KEY=value", as exec passes it.
func setEnvEntry(t *testing.T, entry string) {
	t.Helper()
	key, value, ok := strings.Cut(entry, "=")
	if !ok || key != wire.EnvWorker {
		t.Fatalf("Env() = %q, want %s=…", entry, wire.EnvWorker)
	}
	t.Setenv(key, value)
}

func TestWorkerConfigEnvRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*wire.WorkerConfig)
	}{
		{"full", func(*wire.WorkerConfig) {}},
		{"no token", func(c *wire.WorkerConfig) { c.Token = "" }},
		{"unicode token", func(c *wire.WorkerConfig) { c.Token = "jéton\n✓" }},
		{"64-byte ids", func(c *wire.WorkerConfig) {
			c.Worker, c.Master = strings.Repeat("w", 64), strings.Repeat("M", 64)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := validConfig()
			tc.modify(&want)
			setEnvEntry(t, want.Env())
			got, ok, err := wire.WorkerConfigFromEnv()
			if err != nil || !ok {
				t.Fatalf("WorkerConfigFromEnv = %v, %v, %v", got, ok, err)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("config = %+v, want %+v", *got, want)
			}
		})
	}
}

func TestWorkerConfigFromEnvAbsent(t *testing.T) {
	t.Setenv(wire.EnvWorker, "") // restored after the test
	os.Unsetenv(wire.EnvWorker)
	c, ok, err := wire.WorkerConfigFromEnv()
	if c != nil || ok || err != nil {
		t.Fatalf("WorkerConfigFromEnv without the variable = %v, %v, %v, want nil, false, nil", c, ok, err)
	}
}

func TestWorkerConfigFromEnvErrors(t *testing.T) {
	entry := func(modify func(*wire.WorkerConfig)) string {
		c := validConfig()
		modify(&c)
		_, v, _ := strings.Cut(c.Env(), "=")
		return v
	}
	for _, tc := range []struct {
		name  string
		value string
		want  error
		subs  []string
	}{
		{"empty", "", bus.ErrBadPayload, []string{wire.EnvWorker, "not a worker configuration"}},
		{"malformed JSON", `{"url": "nats://x",`, bus.ErrBadPayload, []string{"not a worker configuration"}},
		{"not an object", `[1, 2]`, bus.ErrBadPayload, []string{"not a worker configuration"}},
		{"wrong field type", `{"url": 1}`, bus.ErrBadPayload, []string{"not a worker configuration"}},
		{"negative version", `{"version": -1}`, bus.ErrBadPayload, []string{"not a worker configuration"}},
		{"empty object", `{}`, bus.ErrBadPayload, []string{"lacks url, worker, master or hello"}},
		{"no url", entry(func(c *wire.WorkerConfig) { c.URL = "" }), bus.ErrBadPayload, []string{"lacks"}},
		{"no hello", entry(func(c *wire.WorkerConfig) { c.Hello = "" }), bus.ErrBadPayload, []string{"lacks"}},
		{"bad worker id", entry(func(c *wire.WorkerConfig) { c.Worker = "w.1" }), bus.ErrBadPayload, []string{"lacks"}},
		{"bad master id", entry(func(c *wire.WorkerConfig) { c.Master = "" }), bus.ErrBadPayload, []string{"lacks"}},
		{"older version", entry(func(c *wire.WorkerConfig) { c.Version = wire.Version() - 1 }), bus.ErrProtocolVersion,
			[]string{fmt.Sprintf("master speaks protocol %d", wire.Version()-1), fmt.Sprintf("speaks %d", wire.Version())}},
		{"newer version", entry(func(c *wire.WorkerConfig) { c.Version = wire.Version() + 1 }), bus.ErrProtocolVersion,
			[]string{fmt.Sprintf("master speaks protocol %d", wire.Version()+1), fmt.Sprintf("speaks %d", wire.Version()), "same processional version"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(wire.EnvWorker, tc.value)
			c, ok, err := wire.WorkerConfigFromEnv()
			if !ok {
				t.Error("ok = false with the variable set: the process is a worker, and must say why it cannot start")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("WorkerConfigFromEnv = %+v, %v, want an error wrapping %v", c, err, tc.want)
			}
			// With another protocol, the worker still gets the config, to
			// tell its master why in its hello; otherwise it gets none.
			if tc.want == bus.ErrProtocolVersion {
				var want wire.WorkerConfig
				if err := json.Unmarshal([]byte(tc.value), &want); err != nil {
					t.Fatal(err)
				}
				if c == nil || *c != want {
					t.Errorf("config = %+v, want %+v along with the error", c, want)
				}
			} else if c != nil {
				t.Errorf("config = %+v along with %v, want nil", c, err)
			}
			wantSubstrings(t, "error", err.Error(), tc.subs...)
		})
	}
}

func TestWorkerConfigEnvIsJSON(t *testing.T) {
	c := validConfig()
	_, v, _ := strings.Cut(c.Env(), "=")
	var m map[string]any
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"url", "token", "worker", "master", "hello", "version"} {
		if _, ok := m[k]; !ok {
			t.Errorf("Env() JSON lacks %q: %s", k, v)
		}
	}
}

func TestHello(t *testing.T) {
	h := wire.NewHello("w-1")
	if h.Worker != "w-1" || h.Version != wire.Version() || h.PID != os.Getpid() || h.Error != "" {
		t.Fatalf("NewHello = %+v", h)
	}
	fs := registry.Functions()
	if len(h.Functions) != len(fs) {
		t.Fatalf("hello lists %d functions, %d are registered", len(h.Functions), len(fs))
	}
	for i, f := range fs {
		if h.Functions[i] != f.Name() {
			t.Fatalf("hello function %d = %q, want %q", i, h.Functions[i], f.Name())
		}
	}
	// It travels.
	var back wire.Hello
	if err := codec.Unmarshal(mustMarshal(t, h), &back); err != nil || !reflect.DeepEqual(&back, h) {
		t.Fatalf("hello after the codec = %+v, %v", back, err)
	}

	for _, tc := range []struct {
		name string
		h    wire.Hello
		want error
		subs []string
	}{
		{"ok", wire.Hello{Version: wire.Version(), Worker: "w-1"}, nil, nil},
		{"other version", wire.Hello{Version: wire.Version() + 1, Worker: "w-1"}, bus.ErrProtocolVersion,
			[]string{fmt.Sprintf("worker w-1 speaks protocol %d", wire.Version()+1), fmt.Sprintf("this master speaks %d", wire.Version())}},
		{"version and error", wire.Hello{Version: 0, Worker: "w-1", Error: "bad config"}, bus.ErrProtocolVersion, nil},
		{"error", wire.Hello{Version: wire.Version(), Worker: "w-1", Error: "bad config"}, nil,
			[]string{"worker w-1 cannot serve: bad config"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.Check()
			switch {
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("Check() = %v, want %v", err, tc.want)
			case tc.want == nil && tc.subs == nil && err != nil:
				t.Fatalf("Check() = %v, want nil", err)
			case tc.subs != nil && err == nil:
				t.Fatal("Check() = nil, want an error")
			}
			if err != nil {
				wantSubstrings(t, "error", err.Error(), tc.subs...)
			}
		})
	}
}
