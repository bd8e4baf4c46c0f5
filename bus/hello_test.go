package bus_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/processional/processional/bus"
)

func validConfig() bus.WorkerConfig {
	return bus.WorkerConfig{
		URL:     "nats://127.0.0.1:4222",
		Token:   "s3cr=t \"quoted\"",
		Worker:  "w-abc",
		Master:  "m-def",
		Hello:   bus.HelloSubject("m-def", "w-abc"),
		Version: bus.Version(),
	}
}

// setEnvEntry sets the variable of an entry "KEY=value", as exec passes it.
func setEnvEntry(t *testing.T, entry string) {
	t.Helper()
	key, value, ok := strings.Cut(entry, "=")
	if !ok || key != bus.EnvWorker {
		t.Fatalf("Env() = %q, want %s=…", entry, bus.EnvWorker)
	}
	t.Setenv(key, value)
}

func TestWorkerConfigEnvRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*bus.WorkerConfig)
	}{
		{"full", func(*bus.WorkerConfig) {}},
		{"no token", func(c *bus.WorkerConfig) { c.Token = "" }},
		{"unicode token", func(c *bus.WorkerConfig) { c.Token = "jéton\n✓" }},
		{"64-byte ids", func(c *bus.WorkerConfig) {
			c.Worker, c.Master = strings.Repeat("w", 64), strings.Repeat("M", 64)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := validConfig()
			tc.modify(&want)
			setEnvEntry(t, want.Env())
			got, ok, err := bus.WorkerConfigFromEnv()
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
	t.Setenv(bus.EnvWorker, "") // restored after the test
	os.Unsetenv(bus.EnvWorker)
	c, ok, err := bus.WorkerConfigFromEnv()
	if c != nil || ok || err != nil {
		t.Fatalf("WorkerConfigFromEnv without the variable = %v, %v, %v, want nil, false, nil", c, ok, err)
	}
}

func TestWorkerConfigFromEnvErrors(t *testing.T) {
	entry := func(modify func(*bus.WorkerConfig)) string {
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
		{"empty", "", bus.ErrBadPayload, []string{bus.EnvWorker, "not a worker configuration"}},
		{"malformed JSON", `{"url": "nats://x",`, bus.ErrBadPayload, []string{"not a worker configuration"}},
		{"not an object", `[1, 2]`, bus.ErrBadPayload, []string{"not a worker configuration"}},
		{"wrong field type", `{"url": 1}`, bus.ErrBadPayload, []string{"not a worker configuration"}},
		{"negative version", `{"version": -1}`, bus.ErrBadPayload, []string{"not a worker configuration"}},
		{"empty object", `{}`, bus.ErrBadPayload, []string{"lacks url, worker, master or hello"}},
		{"no url", entry(func(c *bus.WorkerConfig) { c.URL = "" }), bus.ErrBadPayload, []string{"lacks"}},
		{"no hello", entry(func(c *bus.WorkerConfig) { c.Hello = "" }), bus.ErrBadPayload, []string{"lacks"}},
		{"bad worker id", entry(func(c *bus.WorkerConfig) { c.Worker = "w.1" }), bus.ErrBadPayload, []string{"lacks"}},
		{"bad master id", entry(func(c *bus.WorkerConfig) { c.Master = "" }), bus.ErrBadPayload, []string{"lacks"}},
		{"older version", entry(func(c *bus.WorkerConfig) { c.Version = bus.Version() - 1 }), bus.ErrProtocolVersion,
			[]string{fmt.Sprintf("master speaks protocol %d", bus.Version()-1), fmt.Sprintf("speaks %d", bus.Version())}},
		{"newer version", entry(func(c *bus.WorkerConfig) { c.Version = bus.Version() + 1 }), bus.ErrProtocolVersion,
			[]string{fmt.Sprintf("master speaks protocol %d", bus.Version()+1), fmt.Sprintf("speaks %d", bus.Version()), "same processional version"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(bus.EnvWorker, tc.value)
			c, ok, err := bus.WorkerConfigFromEnv()
			if !ok {
				t.Error("ok = false with the variable set: the process is a worker, and must say why it cannot start")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("WorkerConfigFromEnv = %+v, %v, want an error wrapping %v", c, err, tc.want)
			}
			// With another protocol, the worker still gets the config, to
			// tell its master why in its hello; otherwise it gets none.
			if tc.want == bus.ErrProtocolVersion {
				var want bus.WorkerConfig
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
	h := bus.NewHello("w-1")
	if h.Worker != "w-1" || h.Version != bus.Version() || h.PID != os.Getpid() || h.Error != "" {
		t.Fatalf("NewHello = %+v", h)
	}
	fs := bus.Functions()
	if len(h.Functions) != len(fs) {
		t.Fatalf("hello lists %d functions, %d are registered", len(h.Functions), len(fs))
	}
	for i, f := range fs {
		if h.Functions[i] != f.Name() {
			t.Fatalf("hello function %d = %q, want %q", i, h.Functions[i], f.Name())
		}
	}
	// It travels.
	var back bus.Hello
	if err := bus.Unmarshal(mustMarshal(t, h), &back); err != nil || !reflect.DeepEqual(&back, h) {
		t.Fatalf("hello after the codec = %+v, %v", back, err)
	}

	for _, tc := range []struct {
		name string
		h    bus.Hello
		want error
		subs []string
	}{
		{"ok", bus.Hello{Version: bus.Version(), Worker: "w-1"}, nil, nil},
		{"other version", bus.Hello{Version: bus.Version() + 1, Worker: "w-1"}, bus.ErrProtocolVersion,
			[]string{fmt.Sprintf("worker w-1 speaks protocol %d", bus.Version()+1), fmt.Sprintf("this master speaks %d", bus.Version())}},
		{"version and error", bus.Hello{Version: 0, Worker: "w-1", Error: "bad config"}, bus.ErrProtocolVersion, nil},
		{"error", bus.Hello{Version: bus.Version(), Worker: "w-1", Error: "bad config"}, nil,
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
