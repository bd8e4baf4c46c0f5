package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/master"
)

// Bare child processes for the baselines: the same binary re-executed in
// a mode that does only the raw thing (answer NATS requests, or echo on a
// Unix socket), so that binary size and runtime start cost the same on
// both sides of a ratio.

const envChild = "PROCESSIONAL_BENCH_CHILD"

// Child modes, and the environment each reads.
const (
	modeNATS   = "nats"   // PROCESSIONAL_BENCH_URL, _TOKEN, _SUBJECT, _READY, and _QUEUE for a queue group
	modeUnix   = "unix"   // PROCESSIONAL_BENCH_SOCKET
	modeHolder = "holder" // a master that spawns a worker, prints its pid, and waits to be killed (PROCESSIONAL_BENCH_URL, _TOKEN: on that server)
	modeClient = "client" // a master connected to a server (PROCESSIONAL_BENCH_URL, _TOKEN), waiting to be killed
)

// ChildMain runs a baseline child when this process was started as one,
// and then exits; otherwise it returns false at once. Call it at the top
// of main, after worker.Main.
func ChildMain() bool {
	mode, ok := os.LookupEnv(envChild)
	if !ok {
		return false
	}
	var err error
	switch mode {
	case modeNATS:
		err = natsChild()
	case modeUnix:
		err = unixChild()
	case modeHolder:
		err = holderChild()
	case modeClient:
		err = clientChild()
	case modeLoad:
		err = loadChild()
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child: %v\n", err)
		os.Exit(2)
	}
	os.Exit(0)
	return true
}

// natsChild answers every request on its subject with the request's data,
// in the subscription's callback: the floor of a NATS responder.
func natsChild() error {
	closed := make(chan struct{})
	nc, err := nats.Connect(os.Getenv("PROCESSIONAL_BENCH_URL"),
		nats.Token(os.Getenv("PROCESSIONAL_BENCH_TOKEN")),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.MaxReconnects(0))
	if err != nil {
		return err
	}
	respond := func(m *nats.Msg) { m.Respond(m.Data) }
	if os.Getenv("PROCESSIONAL_BENCH_ACK") != "" {
		// Acknowledge with an empty message: the raw chunked transfer's
		// receiver.
		respond = func(m *nats.Msg) {
			if m.Reply != "" {
				m.Respond(nil)
			}
		}
	}
	// With PROCESSIONAL_BENCH_QUEUE, one of a queue group: each request
	// goes to one of its members, as to one of a pool's.
	sub, err := nc.QueueSubscribe(os.Getenv("PROCESSIONAL_BENCH_SUBJECT"), os.Getenv("PROCESSIONAL_BENCH_QUEUE"), respond)
	if err != nil {
		return err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return err
	}
	if err := nc.Publish(os.Getenv("PROCESSIONAL_BENCH_READY"), nil); err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	<-closed
	return nil
}

// holderChild is a master process: it spawns a worker (this binary), sets
// a long call running on it, prints the worker's pid, and waits to be
// killed. With PROCESSIONAL_BENCH_URL (and _TOKEN) it starts no server of
// its own but uses that one, which outlives it: its worker, if spawned
// without the lane and the parent-death signal ($PROCESSIONAL_LANE=off,
// $PROCESSIONAL_PDEATHSIG=off), then hears of its master's death from
// the lease alone.
func holderChild() error {
	ctx := context.Background()
	spawn := master.Spawn
	if url := os.Getenv("PROCESSIONAL_BENCH_URL"); url != "" {
		// The lease measured is the default lease of workers elsewhere,
		// which lease_teardown's server holds: the child takes it too.
		m, err := master.New(ctx, master.WithNATS(url), master.WithToken(os.Getenv("PROCESSIONAL_BENCH_TOKEN")),
			master.WithChildLease(master.DefaultLease))
		if err != nil {
			return err
		}
		spawn = m.Spawn
	}
	s, err := spawn(ctx, master.WithOutput(os.Stderr, os.Stderr))
	if err != nil {
		return err
	}
	if _, err := master.Invoke(ctx, s, builtin.Getpid, struct{}{}); err != nil {
		return err
	}
	master.Schedule(ctx, s, builtin.Sleep, time.Hour)
	fmt.Println(s.PID())
	time.Sleep(time.Hour)
	runtime.KeepAlive(s) // held until killed: a slave dropped is closed
	return nil
}

// clientChild is a master connected to a server, with a call running
// there; it prints its master id and waits to be killed.
func clientChild() error {
	ctx := context.Background()
	s, err := master.Connect(ctx, os.Getenv("PROCESSIONAL_BENCH_URL"), master.WithToken(os.Getenv("PROCESSIONAL_BENCH_TOKEN")))
	if err != nil {
		return err
	}
	master.Thread(ctx, s, builtin.Sleep, time.Hour)
	if _, err := master.Invoke(ctx, s, builtin.Getpid, struct{}{}); err != nil {
		return err
	}
	fmt.Println(s.Master().ID())
	time.Sleep(time.Hour)
	return nil
}

// unixChild echoes 32-byte messages on a Unix socket until it closes.
func unixChild() error {
	c, err := net.Dial("unix", os.Getenv("PROCESSIONAL_BENCH_SOCKET"))
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 32)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil
		}
		if _, err := c.Write(buf); err != nil {
			return nil
		}
	}
}

// child is a running baseline child.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startChild(binary string, env ...string) (*child, error) {
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return startProc(cmd)
}

// startProc starts cmd with startCmd, and reaps it when it ends.
func startProc(cmd *exec.Cmd) (*child, error) {
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = time.Second
	}
	if err := startCmd(cmd); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	return c, nil
}

// kill stops the child and waits until it is reaped.
func (c *child) kill() {
	killGroup(c.cmd.Process.Pid)
	<-c.done
}
