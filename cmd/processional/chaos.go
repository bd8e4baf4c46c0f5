//go:build linux

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/processional/processional/internal/chaos"
)

// chaosCmd runs the chaos soak (internal/chaos, docs/chaos.md): a NATS
// cluster, workers and masters under load while processes are killed,
// stopped and cut off; it prints one JSON line and exits 1 when an
// invariant broke. With --role master it is one of the soak's masters.
func chaosCmd(args []string) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	duration := fs.Duration("duration", time.Minute, "how long the faults go on, after the warm-up")
	seed := fs.Int64("seed", 0, "the run's randomness (default: from the clock; printed)")
	lease := fs.Duration("lease", 2*time.Second, "the masters' lease on their workers")
	workers := fs.Int("workers", 3, "CLI workers on loopback (at least 3)")
	masters := fs.Int("masters", 2, "masters (at least 2)")
	loops := fs.Int("loops", 6, "tasks each master keeps in flight")
	netcut := fs.Bool("netcut", true, "cut the link of a worker in a network namespace (as root)")
	dir := fs.String("logs", "", "directory for the processes' logs (default: a temporary one, removed when the run passes)")
	role := fs.String("role", "", "internal: run as one of the soak's masters")
	id := fs.String("id", "", "internal, with --role master: its name")
	natsURL := fs.String("nats", "", "internal, with --role master: the cluster's URLs")
	token := fs.String("token", "", "internal, with --role master: the cluster's token")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: processional chaos [--duration D] [--seed N] [--lease D]\n\nRuns a soak: three NATS servers joined by routes, CLI workers, and masters\nwith workers of their own, under a mixed load, while workers, masters and\nNATS servers are killed, workers stopped past their lease and (as root) a\nworker's link cut. It checks that every task ends with its own result or a\nnamed error in time, and that nothing is orphaned, leaked or grows; it\nprints one JSON line and exits 1 when an invariant broke. See docs/chaos.md.\n\nFlags:")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	switch {
	case *role == "master":
		err := chaos.RunMaster(context.Background(), chaos.MasterConfig{ID: *id, NATS: *natsURL, Token: *token, Seed: *seed,
			Lease: *lease, Pool: "chaos", Loops: *loops}, os.Stdin, os.Stdout)
		if err != nil {
			return fail("chaos", err)
		}
		return 0
	case *role != "":
		return fail("chaos", fmt.Errorf("--role %q: the only role is master", *role))
	case *duration <= 0 || *lease <= 0 || *loops <= 0:
		return fail("chaos", fmt.Errorf("--duration, --lease and --loops must be positive"))
	case *workers < 3 || *masters < 2:
		return fail("chaos", fmt.Errorf("--workers %d --masters %d: at least 3 workers and 2 masters", *workers, *masters))
	}
	if *seed == 0 {
		*seed = time.Now().UnixNano()
	}
	exe, err := os.Executable()
	if err != nil {
		return fail("chaos", err)
	}
	fmt.Fprintf(os.Stderr, "processional chaos: seed %d\n", *seed)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s, err := chaos.Run(ctx, chaos.Config{Exe: exe, Duration: *duration, Seed: *seed, Lease: *lease, Workers: *workers,
		Masters: *masters, Loops: *loops, NetCut: *netcut, Log: os.Stderr, Dir: *dir})
	if err != nil {
		return fail("chaos", err)
	}
	json.NewEncoder(os.Stdout).Encode(s)
	if !s.OKRun {
		return 1
	}
	return 0
}
