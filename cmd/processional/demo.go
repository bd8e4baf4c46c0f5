package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
	"github.com/processional/processional/shm"
)

func demo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	natsURL := fs.String("nats", "", "run the worker part against this worker on a NATS server or cluster, instead of a spawned one")
	token := fs.String("token", os.Getenv("PROCESSIONAL_TOKEN"), "the server's token ($PROCESSIONAL_TOKEN), with --nats")
	workerID := fs.String("worker", "", "the worker's id, with --nats")
	user := fs.String("user", os.Getenv("PROCESSIONAL_USER"), "the NATS user ($PROCESSIONAL_USER), with --nats")
	password := fs.String("password", os.Getenv("PROCESSIONAL_PASSWORD"), "the NATS user's password ($PROCESSIONAL_PASSWORD)")
	creds := fs.String("creds", os.Getenv("PROCESSIONAL_CREDS"), "a NATS credentials file ($PROCESSIONAL_CREDS), with --nats")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: processional demo [--nats URL --worker ID [--token T | --user U | --creds F]]\n\nStarts an embedded NATS server, spawns this binary as a worker, shows each\nexecutor once with its timing, and leaves no process behind. With --nats,\nthe worker part runs on a worker already serving on that server or cluster\n(`processional worker`), wherever it is.\n\nFlags:")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if (*natsURL == "") != (*workerID == "") {
		fmt.Fprintln(os.Stderr, "processional demo: --nats and --worker go together")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	remote := remoteWorker{url: *natsURL, id: *workerID, opts: []master.Option{master.WithToken(*token)}}
	if *user != "" {
		remote.opts = append(remote.opts, master.WithUserInfo(*user, *password))
	}
	if *creds != "" {
		remote.opts = append(remote.opts, master.WithCredentials(*creds))
	}
	if err := runDemo(ctx, os.Stdout, remote); err != nil {
		fmt.Fprintf(os.Stderr, "processional demo: %v\n", err)
		return 1
	}
	return 0
}

// remoteWorker is the worker the demo runs on with --nats; its zero value
// means a spawned one.
type remoteWorker struct {
	url, id string
	opts    []master.Option // the credentials it presents
}

// step prints one line: what was done, its result and its time.
func step(w io.Writer, start time.Time, what string, result any) {
	fmt.Fprintf(w, "  %-52s %-28v %10s\n", what, result, time.Since(start).Round(time.Microsecond))
}

func runDemo(ctx context.Context, w io.Writer, remote remoteWorker) error {
	fmt.Fprintln(w, "1. A goroutine with a result")
	start := time.Now()
	t := master.Go(ctx, func(ctx context.Context) (int, error) { return 6 * 7, nil })
	n, err := t.Wait(ctx)
	if err != nil {
		return err
	}
	step(w, start, "master.Go(ctx, func) → Wait", n)

	fmt.Fprintln(w, "\n2. A slave thread: one OS thread, tasks in submission order")
	th := master.NewThread()
	start = time.Now()
	var tasks []*master.Task[int]
	for i := range 5 {
		tasks = append(tasks, master.Schedule(ctx, th, builtin.Sum, []int{i, i}))
	}
	var got []int
	for _, t := range tasks {
		v, err := t.Wait(ctx)
		if err != nil {
			return err
		}
		got = append(got, v)
	}
	step(w, start, "5 × Schedule(thread, sum, [i i]) → Wait", fmt.Sprint(got))
	start = time.Now()
	n, err = master.Invoke(ctx, th, builtin.Sum, []int{1, 2, 3})
	if err != nil {
		return err
	}
	step(w, start, "Invoke(thread, sum, [1 2 3])", n)
	th.Close()

	var s *master.Slave
	if remote.url == "" {
		fmt.Fprintln(w, "\n3. A slave process: this binary, spawned as a worker, reached on its lane (NATS carries the rest)")
		start = time.Now()
		s, err = master.Spawn(ctx)
		if err != nil {
			return err
		}
		defer s.Terminate() // a no-op once Close has run
		step(w, start, "master.Spawn(ctx)", "worker "+s.ID())
	} else {
		fmt.Fprintln(w, "\n3. A worker somewhere on the NATS cluster, reached by its id")
		start = time.Now()
		for {
			s, err = master.Connect(ctx, remote.url, append(remote.opts, master.WithServerID(remote.id))...)
			if err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(500 * time.Millisecond) // the worker may still be joining
		}
		if err != nil {
			return err
		}
		defer s.Close()
		step(w, start, "master.Connect(ctx, url, WithServerID)", "worker "+s.ID())
	}
	start = time.Now()
	pid, err := master.Invoke(ctx, s, builtin.Getpid, struct{}{})
	if err != nil {
		return err
	}
	step(w, start, "Invoke(slave, getpid) (the master is "+fmt.Sprint(os.Getpid())+")", pid)
	start = time.Now()
	n, err = master.Invoke(ctx, s, builtin.Sum, []int{1, 2, 3})
	if err != nil {
		return err
	}
	step(w, start, "Invoke(slave, sum, [1 2 3])", n)

	start = time.Now()
	sleep := master.Schedule(ctx, s, builtin.Sleep, 200*time.Millisecond)
	after := master.Schedule(ctx, s, builtin.Sum, []int{4, 5})
	conc := master.Thread(ctx, s, builtin.Sum, []int{10, 20})
	c, err := conc.Wait(ctx)
	if err != nil {
		return err
	}
	step(w, start, "Thread(slave, sum, [10 20]) beside a 200ms sleep", fmt.Sprintf("%d (sleep done: %v)", c, sleep.Available()))
	a, err := after.Wait(ctx)
	if err != nil {
		return err
	}
	step(w, start, "Schedule(slave, sum, [4 5]) queued after the sleep", a)

	fmt.Fprintln(w, "\n4. A cancelled call: the worker's function sees its context end")
	start = time.Now()
	long := master.Schedule(ctx, s, builtin.Sleep, time.Hour)
	time.Sleep(20 * time.Millisecond)
	long.Cancel()
	_, err = long.Wait(ctx)
	step(w, start, "Schedule(slave, sleep, 1h) → Cancel → Wait", err)
	if !errors.Is(err, context.Canceled) {
		return fmt.Errorf("cancelled call: %v", err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	start = time.Now()
	_, err = master.Invoke(dctx, s, builtin.Sleep, time.Hour)
	dcancel()
	step(w, start, "Invoke(50ms deadline, slave, sleep, 1h)", err)

	fmt.Fprintln(w, "\n5. A remote panic arrives as an error, with the worker's stack")
	start = time.Now()
	_, err = master.Invoke(ctx, s, builtin.Panic, "something broke")
	step(w, start, "Invoke(slave, panic, \"something broke\")", fmt.Sprintf("errors.Is(err, bus.ErrPanic) = %v", errors.Is(err, bus.ErrPanic)))
	var re *bus.RemoteError
	if !errors.As(err, &re) {
		return fmt.Errorf("remote panic: %v", err)
	}
	fmt.Fprintf(w, "  error: %v\n  remote stack (first lines):\n", err)
	for _, line := range firstLines(re.Stack, 6) {
		fmt.Fprintf(w, "    %s\n", line)
	}

	fmt.Fprintln(w, "\n6. A remote object: a counter that lives in the worker, called by reflection")
	start = time.Now()
	counter, err := master.Wrap(ctx, s, builtin.NewCounter, 40)
	if err != nil {
		return err
	}
	step(w, start, "Wrap(slave, newCounter, 40)", counter)
	start = time.Now()
	total, err := master.Method[int64](ctx, counter, "Add", 2).Wait(ctx)
	if err != nil {
		return err
	}
	step(w, start, "Method[int64](counter, \"Add\", 2)", total)
	start = time.Now()
	field, err := master.Field[int64](ctx, counter, "N")
	if err != nil {
		return err
	}
	step(w, start, "Field[int64](counter, \"N\")", field)
	start = time.Now()
	_, err = counter.Call(ctx, "Reset")
	step(w, start, "counter.Call(\"Reset\")", fmt.Sprintf("errors.Is(err, bus.ErrNoMember) = %v", errors.Is(err, bus.ErrNoMember)))
	fmt.Fprintf(w, "  error: %v\n", err)
	counter.Close() // the worker drops the counter: nobody else holds it

	fmt.Fprintln(w, "\n7. Shared memory: the worker fills a []float64, in place if it shares our /dev/shm")
	start = time.Now()
	buf, squares, err := shm.Make[float64](1 << 20) // 8 MiB in /dev/shm
	if err != nil {
		return err
	}
	defer buf.Close()
	where := "in " + shm.Dir
	if !buf.Shared() {
		where = "in this process: this system shares none"
	}
	step(w, start, "shm.Make[float64](1<<20)", fmt.Sprintf("%d MiB %s", buf.Len()>>20, where))
	start = time.Now()
	n, err = master.Invoke(ctx, s, builtin.Squares, buf)
	if err != nil {
		return err
	}
	// Nothing but the worker writes the buffer, all zeros when made: the
	// square of 1000 in it says the worker wrote this memory, not a copy.
	switch {
	case squares[1000] == 1000*1000:
		step(w, start, "Invoke(slave, squares, buf) (by reference)", n)
		step(w, start, "squares[1000] read here, written there", squares[1000])
	case buf.Shared():
		step(w, start, "Invoke(slave, squares, buf) (copied)", n)
		step(w, start, "squares[1000] read here: the worker wrote its copy", squares[1000])
		fmt.Fprintln(w, "  the worker has another /dev/shm (another host, or another container): the\n  buffer crossed by copy, and what the worker wrote stayed in its copy")
	default:
		step(w, start, "Invoke(slave, squares, buf) (copied: no shared memory)", n)
		step(w, start, "squares[1000] read here: the worker wrote its copy", squares[1000])
	}
	start = time.Now()
	big, err := master.Invoke(ctx, s, builtin.Echo, make([]byte, 3<<20))
	if err != nil {
		return err
	}
	step(w, start, "Invoke(slave, echo, 3 MiB) (copied, in one frame or message)", fmt.Sprintf("%d bytes back", len(big)))

	fmt.Fprintln(w, "\n8. A stream, ranged over with backpressure, and a task's progress")
	start = time.Now()
	var items []int
	for v, err := range master.Stream(ctx, s, builtin.Count, 5) {
		if err != nil {
			return err
		}
		items = append(items, v)
	}
	step(w, start, "for v := range Stream(slave, count, 5)", fmt.Sprint(items))
	start = time.Now()
	taken := 0
	for _, err := range master.Stream(ctx, s, builtin.Count, 1<<40) {
		if err != nil {
			return err
		}
		if taken++; taken == 3 {
			break // the worker's producer is cancelled at once
		}
	}
	step(w, start, "Stream(slave, count, 2^40), break at 3", fmt.Sprintf("%d items, producer cancelled", taken))
	start = time.Now()
	work := master.Schedule(ctx, s, builtin.Work, 300*time.Millisecond)
	var seen []string
	for !work.Available() {
		changed := work.ProgressChanged() // before reading: no report falls between
		var pct int
		if ok, _ := work.Progress(&pct); ok && (len(seen) == 0 || seen[len(seen)-1] != fmt.Sprint(pct, "%")) {
			seen = append(seen, fmt.Sprint(pct, "%"))
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	done, err := work.Wait(ctx)
	if err != nil {
		return err
	}
	step(w, start, "Schedule(slave, work, 300ms) → Task.Progress", fmt.Sprintf("%s, done: %d%%", strings.Join(seen, " "), done))

	fmt.Fprintln(w, "\n9. Close: the worker finishes our queued calls, then exits (spawned) or forgets us (a server)")
	start = time.Now()
	if err := s.Close(); err != nil {
		return err
	}
	step(w, start, "slave.Close()", "closed")
	_, err = master.Invoke(ctx, s, builtin.Sum, []int{1})
	step(w, start, "Invoke on the closed slave", err)
	return nil
}

func firstLines(s string, n int) []string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return lines
}
