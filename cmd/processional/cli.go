package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/cli"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/server"
	"github.com/processional/processional/worker"
)

func fail(cmd string, err error) int {
	fmt.Fprintf(os.Stderr, "processional %s: %v\n", cmd, err)
	return 1
}

// workerCmd joins a NATS server as a worker serving the binary's
// registered functions, until SIGTERM or SIGINT (after its running calls).
func workerCmd(args []string) int { return cli.Worker("processional worker", args) }

// lsCmd lists the workers the server knows, with their functions.
func lsCmd(args []string) int {
	fs := flag.NewFlagSet("ls", flag.ContinueOnError)
	conn := cli.AddConnFlags(fs)
	asJSON := fs.Bool("json", false, "print the workers' micro service info as JSON, one per line")
	wait := fs.Duration("wait", 500*time.Millisecond, "how long to gather answers")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: processional ls [--nats URL] [--json]\n\nLists the workers on the NATS server: id, pid, protocol, functions.\n\nFlags:")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	nc, err := conn.Connect("processional ls")
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
	conn := cli.AddConnFlags(fs)
	id := fs.String("worker", server.DefaultID, "the worker's id")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the result")
	showProgress := fs.Bool("progress", onTerminal(os.Stderr), "show the call's progress reports on a line of stderr (default: when stderr is a terminal)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: processional call [--nats URL] [--worker ID] [--progress] FUNCTION [JSON]\n\nCalls FUNCTION on the worker with the JSON argument (none: its zero value)\nand prints its JSON result; a stream's items, one per line. On a terminal,\na line of stderr shows the call's latest progress as it runs.\n\nFlags:")
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
	nc, err := conn.Connect("processional call")
	if err != nil {
		return fail("call", err)
	}
	defer nc.Close()
	// The worker's hello says whether it has the function: an unknown one
	// is named, not a timeout.
	msg, err := nc.Request(wire.ControlSubject(*id, "hello"), nil, 5*time.Second)
	if errors.Is(err, nats.ErrNoResponders) {
		return fail("call", fmt.Errorf("no worker %q answers on %s", *id, conn.URL))
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
	return callJSON(ctx, nc, *id, function, body, slices.Contains(h.Streams, function), *showProgress)
}

// onTerminal reports whether f is a terminal.
func onTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// callJSON calls function on worker id with the JSON body, and prints its
// result, or each item of a stream on a line of its own. With progress
// set, it asks for the call's progress reports and shows the latest on a
// line of stderr, rewritten as they come and cleared at the end.
func callJSON(ctx context.Context, nc *nats.Conn, id, function, body string, stream, progress bool) int {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return fail("call", err)
	}
	defer sub.Unsubscribe()
	req := nats.NewMsg(wire.JSONSubject(id, function))
	req.Reply, req.Data = inbox, []byte(body)
	if progress {
		req.Header.Set(wire.ProgressHeader, "1")
	}
	if err := nc.PublishMsg(req); err != nil {
		return fail("call", err)
	}
	shown := false
	clear := func() {
		if shown {
			fmt.Fprint(os.Stderr, "\r\x1b[K")
			shown = false
		}
	}
	defer clear()
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			clear()
			return fail("call", fmt.Errorf("%s on worker %s: %w", function, id, err))
		}
		if msg.Header.Get("Status") == "503" {
			return fail("call", fmt.Errorf("no worker %q answers %s", id, function))
		}
		if msg.Header.Get(wire.ProgressHeader) != "" {
			fmt.Fprintf(os.Stderr, "\r\x1b[K%s: %s", function, msg.Data)
			shown = true
			continue
		}
		clear()
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
		if stream && len(msg.Data) == 0 {
			return 0 // the stream's end
		}
		fmt.Println(string(msg.Data))
		if !stream {
			return 0
		}
	}
}

// verbCmd asks a worker one of its diagnosis verbs and prints the answer.
func verbCmd(verb, summary string) func(args []string) int {
	return func(args []string) int {
		fs := flag.NewFlagSet(verb, flag.ContinueOnError)
		conn := cli.AddConnFlags(fs)
		id := fs.String("worker", server.DefaultID, "the worker's id")
		asJSON := fs.Bool("json", false, "print the worker's JSON answer as it is")
		fs.Usage = func() {
			fmt.Fprintf(fs.Output(), "usage: processional %s [--nats URL] [--worker ID]\n\n%s\n\nFlags:\n", verb, summary)
			fs.PrintDefaults()
		}
		if code, ok := parseFlags(fs, args); !ok {
			return code
		}
		nc, err := conn.Connect("processional " + verb)
		if err != nil {
			return fail(verb, err)
		}
		defer nc.Close()
		msg, err := nc.Request(wire.ControlSubject(*id, verb), nil, 10*time.Second)
		if errors.Is(err, nats.ErrNoResponders) {
			return fail(verb, fmt.Errorf("no worker %q answers on %s", *id, conn.URL))
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
	fmt.Fprintln(tw, "MASTER\tID\tFUNCTION\tKIND\tSTATE\tAGE\tPROGRESS")
	for _, c := range calls {
		prog := "-"
		if c.Progress != nil {
			prog = string(c.Progress)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", c.Master, c.ID, c.Function, c.Kind, c.State, time.Duration(c.AgeMS)*time.Millisecond, prog)
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
