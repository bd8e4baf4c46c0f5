package bench

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFindLean(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, perm os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), perm); err != nil {
			t.Fatal(err)
		}
		return path
	}
	benched := write("processional", 0o755)
	plain := write("plain", 0o644)
	for _, tc := range []struct {
		name, given string
		beside      bool   // a processional-worker beside the benched binary
		noGo        bool   // no go command on PATH
		want        string // the lean binary found; empty: none
		wantErr     string
		wantNote    string
	}{
		{name: "given, missing", given: filepath.Join(dir, "nope"), wantErr: "no such file"},
		{name: "given, not executable", given: plain, wantErr: "not an executable file"},
		{name: "given", given: benched, want: benched},
		{name: "beside", beside: true, want: filepath.Join(dir, leanName)},
		{name: "none", noGo: true, wantNote: "lean_worker_rss_mb left out: no processional-worker given (--lean-worker), none beside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(dir, leanName))
			if tc.beside {
				write(leanName, 0o755)
			}
			if tc.noGo {
				t.Setenv("PATH", "")
			}
			var progress bytes.Buffer
			e := NewEnv(benched)
			defer e.Close()
			e.lean.given, e.progress = tc.given, &progress
			err := e.findLean(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to say %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.lean.path != tc.want {
				t.Fatalf("found %q, want %q", e.lean.path, tc.want)
			}
			if !strings.Contains(progress.String(), tc.wantNote) {
				t.Fatalf("progress %q, want it to say %q", progress.String(), tc.wantNote)
			}
		})
	}
}

// TestBuildLean builds the worker-only binary as a bench without one
// beside it does, and checks that it links no nats-server.
func TestBuildLean(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	if sourceTree() == "" {
		t.Skip("no source tree")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e := NewEnv(exe)
	defer e.Close()
	if err := e.findLean(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.lean.path == "" || e.lean.dir == "" || !strings.HasPrefix(e.lean.path, e.lean.dir) {
		t.Fatalf("lean %+v: want a binary built in a temporary directory", e.lean)
	}
	dir := e.lean.dir
	for _, dep := range deps(t, e.lean.path) {
		if strings.HasPrefix(dep, "github.com/nats-io/nats-server") {
			t.Fatalf("the lean binary links %s", dep)
		}
	}
	e.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Close left %s: %v", dir, err)
	}
}

// deps lists the modules a binary was built with.
func deps(t *testing.T, path string) []string {
	t.Helper()
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var mods []string
	for _, d := range bi.Deps {
		mods = append(mods, d.Path)
	}
	return mods
}

// An optional figure that no side recorded is left out; a baseline two
// figures share is printed once.
func TestOptionalFigure(t *testing.T) {
	side := func(names ...string) func(context.Context, *Env, int) (time.Duration, error) {
		return func(_ context.Context, e *Env, _ int) (time.Duration, error) {
			for _, n := range names {
				e.record(n, 2)
			}
			return time.Millisecond, nil
		}
	}
	for _, tc := range []struct {
		name     string
		recorded []string
		want     string
	}{
		{"recorded", []string{"a_mb", "lean_mb"}, "base,measured,base_mb,a_mb,lean_mb"},
		{"not recorded", []string{"a_mb"}, "base,measured,base_mb,a_mb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Pair{
				Name: "measured", Baseline: "base", Unit: "ms", N: 1,
				Also: []Figure{{Name: "a_mb", Baseline: "base_mb", Unit: "MB"}, {Name: "lean_mb", Baseline: "base_mb", Unit: "MB", Optional: true}},
				base: side("base_mb"), measure: side(tc.recorded...),
			}
			e := NewEnv("")
			defer e.Close()
			rows, err := p.Run(context.Background(), e, 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range rows {
				names = append(names, r.Name)
			}
			if got := strings.Join(names, ","); got != tc.want {
				t.Fatalf("rows %s, want %s", got, tc.want)
			}
		})
	}
}
