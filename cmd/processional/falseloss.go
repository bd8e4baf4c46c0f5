package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/processional/processional/internal/leasesoak"
)

// falseLossCmd measures how often healthy workers are declared lost under
// CPU starvation, for several lease lengths: the figures the default
// leases were chosen from (docs/lifetimes.md).
func falseLossCmd(args []string) int {
	fs := flag.NewFlagSet("falseloss", flag.ContinueOnError)
	duration := fs.Duration("duration", 10*time.Minute, "how long the workers are watched")
	leases := fs.String("leases", "250ms,500ms,1s,2s,4s", "comma-separated lease lengths, tried side by side")
	children := fs.Int("children", 2, "workers each master spawns, per lease")
	elsewhere := fs.Int("elsewhere", 2, "processional worker processes each master uses over NATS, per lease")
	spinners := fs.Int("spin", 1, "busy-loop processes, each spinning on every core ("+fmt.Sprint(runtime.NumCPU())+" here); 0 for none")
	every := fs.Duration("every", 200*time.Millisecond, "how often each worker is called")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: processional falseloss [--duration D] [--leases L,…] [--spin N]\n\n"+
			"Watches healthy workers, never killed, under busy loops on every core, and\n"+
			"prints one JSON line per lease and kind of worker (child, elsewhere): how\n"+
			"many were declared lost (lost) or dropped their master (lapsed), and the\n"+
			"rate per worker-hour. Build it with -race to starve it further.\n\nFlags:")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg := leasesoak.Config{Duration: *duration, Children: *children, Elsewhere: *elsewhere, Spinners: *spinners, Every: *every}
	for _, s := range strings.Split(*leases, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			fmt.Fprintf(os.Stderr, "processional falseloss: --leases: %q is not a positive duration\n", s)
			return 2
		}
		cfg.Leases = append(cfg.Leases, d)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "processional falseloss: %v\n", err)
		return 1
	}
	cfg.Binary = self
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := leasesoak.Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "processional falseloss: %v\n", err)
		return 1
	}
	return 0
}
