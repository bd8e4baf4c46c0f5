package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/natsauth"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/server"
	"github.com/processional/processional/worker"
)

// connFlags are the connection flags every command that joins a NATS
// server takes.
type connFlags struct {
	url, token, user, password string
	creds, cert, key, ca       string
	retries                    int
}

func addConnFlags(fs *flag.FlagSet) *connFlags {
	c := &connFlags{}
	fs.StringVar(&c.url, "nats", envOr("PROCESSIONAL_NATS", "nats://127.0.0.1:4222"), "the NATS server's URL ($PROCESSIONAL_NATS)")
	fs.StringVar(&c.token, "token", os.Getenv("PROCESSIONAL_TOKEN"), "the server's token ($PROCESSIONAL_TOKEN)")
	fs.StringVar(&c.user, "user", os.Getenv("PROCESSIONAL_USER"), "the NATS user ($PROCESSIONAL_USER)")
	fs.StringVar(&c.password, "password", os.Getenv("PROCESSIONAL_PASSWORD"), "the NATS user's password ($PROCESSIONAL_PASSWORD)")
	fs.StringVar(&c.creds, "creds", os.Getenv("PROCESSIONAL_CREDS"), "a NATS credentials file: JWT and nkey ($PROCESSIONAL_CREDS)")
	fs.StringVar(&c.cert, "tlscert", "", "the client's TLS certificate file")
	fs.StringVar(&c.key, "tlskey", "", "the client's TLS key file")
	fs.StringVar(&c.ca, "tlsca", "", "the TLS certificate authority file that signed the server's certificate")
	fs.IntVar(&c.retries, "retries", 5, "connection attempts before giving up, a second apart")
	return c
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// connect connects to the server, retrying with a visible message.
func (c *connFlags) connect(name string) (*nats.Conn, error) {
	creds, err := natsauth.Files{Token: c.token, User: c.user, Password: c.password, Creds: c.creds, Cert: c.cert, Key: c.key, CA: c.ca}.Options()
	if err != nil {
		return nil, err
	}
	opts := append([]nats.Option{nats.Name(name), nats.Timeout(2 * time.Second),
		// A permissions violation or a slow consumer is said, not swallowed.
		nats.ErrorHandler(natsauth.ErrorHandler(slog.Warn, "client", name))}, creds...)
	// A worker rejoins within a lease of its server coming back, and keeps
	// trying while its server is away: it is a service.
	opts = append(opts, natsauth.Reconnect()...)
	for attempt := 1; attempt <= max(c.retries, 1); attempt++ {
		var nc *nats.Conn
		if nc, err = nats.Connect(c.url, opts...); err == nil {
			return nc, nil
		}
		if attempt < c.retries {
			fmt.Fprintf(os.Stderr, "processional: cannot reach %s (%v); retrying (%d/%d)\n", c.url, err, attempt, c.retries)
			time.Sleep(time.Second)
		}
	}
	return nil, fmt.Errorf("cannot reach the NATS server at %s after %d attempts: %w", c.url, max(c.retries, 1), err)
}

func fail(cmd string, err error) int {
	fmt.Fprintf(os.Stderr, "processional %s: %v\n", cmd, err)
	return 1
}

// workerCmd joins a NATS server as a worker serving the binary's
// registered functions, until SIGTERM or SIGINT (after its running calls).
func workerCmd(args []string) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	conn := addConnFlags(fs)
	id := fs.String("id", "", "the worker's id, the token its subjects start with (default: a random one)")
	pool := fs.String("pool", "", "join this pool: masters share their calls among its members (master.Pool)")
	maxPending := fs.Int("max-pending", worker.DefaultMaxPending, "calls held at once, queued or running; more are refused with ErrOverloaded")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: processional worker [--nats URL] [--token T | --creds F] [--id ID] [--pool NAME]\n\nJoins a NATS server (or cluster) as a worker serving this binary's\nregistered functions, msgpack for masters and JSON for the nats CLI.\nStops after its running calls on SIGTERM or SIGINT, or a request on\nproc.<id>.ctl.stop.\n\nFlags:")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	var opts []worker.Option
	if *id != "" {
		opts = append(opts, worker.WithID(*id))
	}
	if *maxPending <= 0 {
		return fail("worker", fmt.Errorf("--max-pending %d: want a positive count", *maxPending))
	}
	opts = append(opts, worker.WithMaxPending(*maxPending))
	if *pool != "" {
		opts = append(opts, worker.WithPool(*pool))
	}
	nc, err := conn.connect("processional worker")
	if err != nil {
		return fail("worker", err)
	}
	defer nc.Close()
	nc.SetErrorHandler(nil) // the worker logs the connection's errors itself: once is enough
	w, err := worker.Serve(nc, opts...)
	if err != nil {
		return fail("worker", err)
	}
	fmt.Printf("worker %s serving on %s\n", w.ID(), nc.ConnectedUrl())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	select {
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "processional worker: %s: finishing the running calls\n", s)
	case <-w.Stopping():
		fmt.Fprintln(os.Stderr, "processional worker: stop requested: finishing the running calls")
	}
	if err := w.Close(); err != nil {
		return fail("worker", err)
	}
	return 0
}

// lsCmd lists the workers the server knows, with their functions.
func lsCmd(args []string) int {
	fs := flag.NewFlagSet("ls", flag.ContinueOnError)
	conn := addConnFlags(fs)
	asJSON := fs.Bool("json", false, "print the workers' micro service info as JSON, one per line")
	wait := fs.Duration("wait", 500*time.Millisecond, "how long to gather answers")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: processional ls [--nats URL] [--json]\n\nLists the workers on the NATS server: id, pid, protocol, functions.\n\nFlags:")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	nc, err := conn.connect("processional ls")
	if err != nil {
		return fail("ls", err)
	}
	defer nc.Close()
	infos, err := discover(nc, *wait)
	if err != nil {
		return fail("ls", err)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		for _, info := range infos {
			enc.Encode(info)
		}
		return 0
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tPOOL\tPID\tPROTOCOL\tFUNCTIONS")
	for _, info := range infos {
		var fns []string
		for _, ep := range info.Endpoints {
			if f := ep.Metadata["function"]; f != "" {
				fns = append(fns, f)
			}
		}
		pool := info.Metadata["pool"]
		if pool == "" {
			pool = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", info.Metadata["worker"], pool, info.Metadata["pid"], info.Metadata["protocol"], strings.Join(uniq(fns), " "))
	}
	tw.Flush()
	if len(infos) == 0 {
		fmt.Fprintln(os.Stderr, "no worker answered")
	}
	return 0
}

// discover gathers the micro service info of every worker for wait.
func discover(nc *nats.Conn, wait time.Duration) ([]micro.Info, error) {
	inbox := nats.NewInbox()
	msgs := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$SRV.INFO."+worker.ServiceName, inbox, nil); err != nil {
		return nil, err
	}
	var out []micro.Info
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case m := <-msgs:
			var info micro.Info
			if json.Unmarshal(m.Data, &info) == nil {
				out = append(out, info)
			}
		case <-timer.C:
			sort.Slice(out, func(i, j int) bool { return out[i].Metadata["worker"] < out[j].Metadata["worker"] })
			return out, nil
		}
	}
}

// callCmd calls a function of a worker with a JSON argument and prints
// its JSON result.
func callCmd(args []string) int {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	conn := addConnFlags(fs)
	id := fs.String("worker", server.DefaultID, "the worker's id")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the result")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: processional call [--nats URL] [--worker ID] FUNCTION [JSON]\n\nCalls FUNCTION on the worker with the JSON argument (none: its zero value)\nand prints its JSON result.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return 2
	}
	function, body := fs.Arg(0), ""
	if fs.NArg() == 2 {
		body = fs.Arg(1)
	}
	nc, err := conn.connect("processional call")
	if err != nil {
		return fail("call", err)
	}
	defer nc.Close()
	// The worker's hello says whether it has the function: an unknown one
	// is named, not a timeout.
	msg, err := nc.Request(wire.ControlSubject(*id, "hello"), nil, 5*time.Second)
	if errors.Is(err, nats.ErrNoResponders) {
		return fail("call", fmt.Errorf("no worker %q answers on %s", *id, conn.url))
	}
	if err != nil {
		return fail("call", err)
	}
	var h wire.Hello
	if err := codec.Unmarshal(msg.Data, &h); err != nil {
		return fail("call", fmt.Errorf("worker %s said an undecodable hello: %v", *id, err))
	}
	known := false
	for _, f := range h.Functions {
		known = known || f == function
	}
	if !known {
		return fail("call", fmt.Errorf("%w %q on worker %s; it has: %s", bus.ErrUnknownFunction, function, *id, strings.Join(h.Functions, " ")))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	msg, err = nc.RequestWithContext(ctx, wire.JSONSubject(*id, function), []byte(body))
	if err != nil {
		return fail("call", err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		var re bus.RemoteError
		if json.Unmarshal(msg.Data, &re) == nil && re.Message != "" {
			fmt.Fprintf(os.Stderr, "processional call: %v\n", &re)
			if re.Stack != "" {
				fmt.Fprintln(os.Stderr, re.Stack)
			}
		} else {
			fmt.Fprintf(os.Stderr, "processional call: %s %s\n", code, msg.Header.Get(micro.ErrorHeader))
		}
		return 1
	}
	fmt.Println(string(msg.Data))
	return 0
}

// verbCmd asks a worker one of its diagnosis verbs and prints the answer.
func verbCmd(verb, summary string) func(args []string) int {
	return func(args []string) int {
		fs := flag.NewFlagSet(verb, flag.ContinueOnError)
		conn := addConnFlags(fs)
		id := fs.String("worker", server.DefaultID, "the worker's id")
		asJSON := fs.Bool("json", false, "print the worker's JSON answer as it is")
		fs.Usage = func() {
			fmt.Fprintf(fs.Output(), "usage: processional %s [--nats URL] [--worker ID]\n\n%s\n\nFlags:\n", verb, summary)
			fs.PrintDefaults()
		}
		if code, ok := parseFlags(fs, args); !ok {
			return code
		}
		nc, err := conn.connect("processional " + verb)
		if err != nil {
			return fail(verb, err)
		}
		defer nc.Close()
		msg, err := nc.Request(wire.ControlSubject(*id, verb), nil, 10*time.Second)
		if errors.Is(err, nats.ErrNoResponders) {
			return fail(verb, fmt.Errorf("no worker %q answers on %s", *id, conn.url))
		}
		if err != nil {
			return fail(verb, err)
		}
		if verb == "pending" && !*asJSON {
			return printPending(os.Stdout, msg.Data)
		}
		os.Stdout.Write(msg.Data)
		if len(msg.Data) > 0 && msg.Data[len(msg.Data)-1] != '\n' {
			fmt.Println()
		}
		return 0
	}
}

func printPending(w io.Writer, data []byte) int {
	var calls []worker.PendingCall
	if err := json.Unmarshal(data, &calls); err != nil {
		return fail("pending", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MASTER\tID\tFUNCTION\tKIND\tSTATE\tAGE")
	for _, c := range calls {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", c.Master, c.ID, c.Function, c.Kind, c.State, time.Duration(c.AgeMS)*time.Millisecond)
	}
	tw.Flush()
	return 0
}

// uniq drops repeated strings, keeping the first of each.
func uniq(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
