package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"

	"github.com/processional/processional/internal/bench"
	"github.com/processional/processional/worker"
)

func benchCmd(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object per row: name, value, unit, baseline, baseline_value, ratio")
	only := fs.String("only", "", "comma-separated row names to measure (a pair is measured whole)")
	rounds := fs.Int("rounds", 7, "rounds per side; each figure is the median round")
	scale := fs.Float64("scale", 1, "multiply the operations per round (smaller is quicker and noisier)")
	lean := fs.String("lean-worker", "", "the worker-only binary whose workers lean_worker_rss_mb measures (default: processional-worker beside this binary, else built with go build from the source tree)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of this process (the master's side) to the file, and one of each spawned worker to the file.worker.<id>")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: processional bench [--json] [--only a,b] [--rounds N] [--scale X] [--lean-worker PATH]\n\nRows:")
		writeBenchRows(fs.Output())
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	var names []string
	if *only != "" {
		for _, n := range strings.Split(*only, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "processional bench: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "processional bench: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
		// The workers the bench spawns profile themselves beside it.
		os.Setenv(worker.EnvCPUProfile, *cpuprofile+".worker")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Progress goes to stderr in both modes: --json's rows are stdout's.
	o := bench.Options{Only: names, Rounds: *rounds, Scale: *scale, LeanWorker: *lean, Progress: os.Stderr}
	rows, err := bench.Run(ctx, o)
	if *asJSON {
		if werr := bench.WriteJSON(os.Stdout, rows); werr != nil && err == nil {
			err = werr
		}
	} else {
		bench.WriteTable(os.Stdout, rows)
		if slices.ContainsFunc(rows, func(r bench.Row) bool { return r.Name == "worker_rss_mb" }) && cgoBuild() {
			fmt.Println("This binary links libc (built with CGO_ENABLED=1): its workers' resident memory counts libc's pages;\nbuilt with CGO_ENABLED=0 (as the Dockerfile does), worker_rss_mb is about 1.6 MB lower.")
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "processional bench: %v\n", err)
		return 1
	}
	return 0
}

// writeBenchRows lists every row but the baselines, with its baseline,
// and the pair it is measured with when that is another row's.
func writeBenchRows(w io.Writer) {
	for _, p := range bench.Pairs() {
		fmt.Fprintf(w, "  %-22s against %s\n", p.Name, p.Baseline)
		for _, x := range p.Extra {
			fmt.Fprintf(w, "  %-22s against %s (measured with %s)\n", x, p.Baseline, p.Name)
		}
		for _, d := range p.Derived {
			fmt.Fprintf(w, "  %-22s against %s (%s's figure, measured with it)\n", d.Name, d.Over, d.Of)
		}
		for _, f := range p.Also {
			fmt.Fprintf(w, "  %-22s against %s (measured with %s)\n", f.Name, f.Baseline, p.Name)
		}
	}
}

// cgoBuild reports whether this binary was built with cgo.
func cgoBuild() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "CGO_ENABLED" {
			return s.Value == "1"
		}
	}
	return false
}
