package bench

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// leanName and leanPackage are the worker-only binary's: it links no
// nats-server, and lean_worker_rss_mb measures its workers.
const (
	leanName    = "processional-worker"
	leanPackage = "github.com/processional/processional/cmd/processional-worker"
)

// leanWorker is the worker-only binary the bench spawns, and where it
// comes from.
type leanWorker struct {
	given  string // Options.LeanWorker
	looked bool   // findLean ran
	path   string // the binary; empty if there is none
	dir    string // a temporary directory it was built in, removed by Env.Close
}

// findLean finds the worker-only binary, once: Options.LeanWorker if
// given (an error if it is no executable file); else processional-worker
// beside the benched binary; else one that go build makes in a temporary
// directory, from the source tree this package was compiled from, or
// else from the current directory's module. Without one it says why on
// the progress writer, and lean_worker_rss_mb is left out.
func (e *Env) findLean(ctx context.Context) error {
	if e.lean.looked {
		return nil
	}
	e.lean.looked = true
	if e.lean.given != "" {
		if err := executable(e.lean.given); err != nil {
			return fmt.Errorf("lean worker: %w", err)
		}
		e.lean.path = e.lean.given
		e.noteBuild(e.lean.path)
		return nil
	}
	beside := filepath.Join(filepath.Dir(e.binary), leanName)
	if executable(beside) == nil {
		e.lean.path = beside
		e.noteBuild(beside)
		return nil
	}
	path, err := e.buildLean(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e.progressf("lean_worker_rss_mb left out: no %s given (--lean-worker), none beside %s, and %v\n", leanName, e.binary, err)
		return nil
	}
	e.lean.path = path
	return nil
}

// executable says why path is not an executable file, if it is not.
func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: not an executable file", path)
	}
	return nil
}

// buildLean builds the worker-only binary into a temporary directory,
// with the benched binary's cgo and race settings, which change what a
// process holds resident.
func (e *Env) buildLean(ctx context.Context) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("no go command to build it: %w", err)
	}
	dir, err := os.MkdirTemp("", "processional-bench-")
	if err != nil {
		return "", err
	}
	e.lean.dir = dir
	out := filepath.Join(dir, leanName)
	args := []string{"build", "-o", out}
	env := os.Environ()
	settings := buildSettings(e.binary)
	if settings["-race"] == "true" {
		args = append(args, "-race")
	}
	if cgo, ok := settings["CGO_ENABLED"]; ok {
		env = append(env, "CGO_ENABLED="+cgo)
	}
	cmd := exec.CommandContext(ctx, gobin, append(args, leanPackage)...)
	cmd.Dir, cmd.Env = sourceTree(), env
	where := cmd.Dir
	if where == "" {
		where = "the current directory"
	}
	e.progressf("building %s in %s…\n", leanPackage, where)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %v: %s", leanPackage, where, err, strings.TrimSpace(string(msg)))
	}
	return out, nil
}

// sourceTree is the root of the module this package was compiled from, if
// it is still on disk (not with -trimpath, nor on another machine); else
// empty.
func sourceTree() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return ""
	}
	root := filepath.Dir(filepath.Dir(filepath.Dir(file))) // …/internal/bench/leanbin.go
	if _, err := os.Stat(filepath.Join(root, "cmd", leanName)); err != nil {
		return ""
	}
	return root
}

// buildSettings returns the build settings of the binary at path (go
// version -m), or none if it has none to read.
func buildSettings(path string) map[string]string {
	m := map[string]string{}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return m
	}
	for _, s := range info.Settings {
		m[s.Key] = s.Value
	}
	return m
}

// noteBuild says on the progress writer when the lean binary at path was
// built with another cgo or race setting than the benched binary: the two
// rows then differ by libc's pages or the race runtime's too.
func (e *Env) noteBuild(path string) {
	lean, full := buildSettings(path), buildSettings(e.binary)
	for _, key := range []string{"CGO_ENABLED", "-race"} {
		if lean[key] != full[key] {
			e.progressf("note: %s has %s=%q, %s %q: lean_worker_rss_mb and worker_rss_mb differ by that too\n", path, key, lean[key], e.binary, full[key])
		}
	}
}

// progressf writes a line on the progress writer, if there is one.
func (e *Env) progressf(format string, args ...any) {
	if e.progress != nil {
		fmt.Fprintf(e.progress, format, args...)
	}
}
