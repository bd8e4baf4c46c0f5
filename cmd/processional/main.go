// Command processional is processional's binary: a demo of what the
// library does, its benchmark, and (as every binary built on the library)
// its own worker.
//
//	processional demo            show each executor once, with timings
//	processional bench [--json]  measure against raw baselines
//	processional server          a persistent worker for many masters
//	processional worker          join a NATS server as a worker
//	processional chaos           a soak under faults (docs/chaos.md)
//	processional ls              the workers on a NATS server
//	processional call F [JSON]   call a worker's function
//	processional pending|stack|refs|leases   ask a worker what it does
//
// Run `processional help` for the commands and their flags.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/processional/processional/internal/bench"
	"github.com/processional/processional/internal/cli"
	"github.com/processional/processional/internal/leasesoak"
	"github.com/processional/processional/worker"

	_ "github.com/processional/processional/builtin" // functions every processional worker serves
)

func main() {
	if worker.Main() {
		return
	}
	if bench.ChildMain() {
		return
	}
	if leasesoak.SpinMain() {
		return
	}
	os.Exit(run(os.Args[1:]))
}

var commands = []struct {
	name, summary string
	run           func(args []string) int
}{
	{"demo", "run a demo master with a spawned worker on the embedded server", demo},
	{"bench", "measure processional against raw baselines taken in the same run", benchCmd},
	{"server", "run a persistent worker with its own NATS server, for many masters", serverCmd},
	{"worker", "join a NATS server as a worker serving this binary's functions", workerCmd},
	{"nats", "run a NATS server, alone or in a cluster joined by routes", natsCmd},
	{"chaos", "soak a cluster of servers, workers and masters under load and faults, checking its promises", chaosCmd},
	{"ls", "list the workers on a NATS server, with their functions", lsCmd},
	{"call", "call a worker's function with a JSON argument, print its JSON result", callCmd},
	{"pending", "list a worker's calls queued and running", verbCmd("pending", "Lists the worker's calls queued and running: master, id, function, kind, state, age.")},
	{"stack", "print a worker's goroutine stacks", verbCmd("stack", "Prints the stacks of all the worker's goroutines: what a worker that hangs is doing.")},
	{"refs", "list the objects a worker holds", verbCmd("refs", "Lists the objects the worker holds (JSON): id, Go type, holders, age, calls in flight.")},
	{"leases", "list the masters holding a lease on a worker", verbCmd("leases", "Lists the masters holding a lease on the worker (JSON): master id → ms since its last heartbeat.")},
	{"falseloss", "measure how often healthy workers are declared lost under CPU starvation", falseLossCmd},
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(os.Stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:])
		}
	}
	fmt.Fprintf(os.Stderr, "processional: unknown command %q\n\n", args[0])
	usage(os.Stderr)
	return 2
}

// parseFlags parses a command's flags (cli.ParseFlags).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	return cli.ParseFlags("processional "+fs.Name(), fs, args)
}

func usage(w *os.File) {
	fmt.Fprintln(w, "usage: processional <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `processional <command> --help` for a command's flags.")
}
