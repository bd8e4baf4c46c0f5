package cli

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/processional/processional/worker"
)

// Worker runs the worker command as name (the prefix of its usage and its
// messages: "processional worker", "processional-worker") with args, its
// flags: it joins a NATS server (or cluster) as a worker serving the
// binary's registered functions, and blocks until SIGTERM or SIGINT or a
// request on proc.<id>.ctl.stop, then returns after the running calls. It
// returns the exit code: 0, 1 on failure, 2 for bad flags.
func Worker(name string, args []string) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	conn := AddConnFlags(fs)
	id := fs.String("id", "", "the worker's id, the token its subjects start with (default: a random one)")
	pool := fs.String("pool", "", "join this pool: masters share their calls among its members (master.Pool)")
	maxPending := fs.Int("max-pending", worker.DefaultMaxPending, "calls held at once, queued or running; more are refused with ErrOverloaded")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [--nats URL] [--token T | --creds F] [--id ID] [--pool NAME]\n\nJoins a NATS server (or cluster) as a worker serving this binary's\nregistered functions, msgpack for masters and JSON for the nats CLI.\nStops after its running calls on SIGTERM or SIGINT, or a request on\nproc.<id>.ctl.stop.\n\nFlags:\n", name)
		fs.PrintDefaults()
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	if code, ok := ParseFlags(name, fs, args); !ok {
		return code
	}
	var opts []worker.Option
	if *id != "" {
		opts = append(opts, worker.WithID(*id))
	}
	if *maxPending <= 0 {
		return fail(fmt.Errorf("--max-pending %d: want a positive count", *maxPending))
	}
	opts = append(opts, worker.WithMaxPending(*maxPending))
	if *pool != "" {
		opts = append(opts, worker.WithPool(*pool))
	}
	nc, err := conn.Connect(name)
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	nc.SetErrorHandler(nil) // the worker logs the connection's errors itself: once is enough
	w, err := worker.Serve(nc, opts...)
	if err != nil {
		return fail(err)
	}
	fmt.Printf("worker %s serving on %s\n", w.ID(), nc.ConnectedUrl())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	select {
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "%s: %s: finishing the running calls\n", name, s)
	case <-w.Stopping():
		fmt.Fprintf(os.Stderr, "%s: stop requested: finishing the running calls\n", name)
	}
	if err := w.Close(); err != nil {
		return fail(err)
	}
	return 0
}

// ParseFlags parses a command's flags, which take no arguments after them.
// When ok is false the command is over, with exit code: 0 after --help,
// 2 for bad flags or arguments. name prefixes its complaints.
func ParseFlags(name string, fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: unexpected argument %q\n", name, fs.Arg(0))
		return 2, false
	}
	return 0, true
}
