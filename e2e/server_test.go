//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/internal/serveraddr"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
	"github.com/processional/processional/worker"
)

// server is a `processional server` process.
type server struct {
	cmd                *exec.Cmd
	url, socket, token string
}

// startServer runs binary's server command and reads its address and
// token; the process is killed when the test ends.
func startServer(t *testing.T, binary string, args ...string) *server {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "server.sock")
	cmd := exec.Command(binary, append([]string{"server", "--socket", sock}, args...)...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	addr, err := serveraddr.Read(bufio.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, url: addr.URL, socket: addr.Socket, token: addr.Token}
	return s
}

// pendingCalls asks the server for the calls it queues or runs.
func (s *server) pendingCalls(t *testing.T) []worker.PendingCall {
	t.Helper()
	nc, err := nats.Connect(s.url, nats.Token(s.token))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg, err := nc.Request(wire.ControlSubject("server", "pending"), nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var out []worker.PendingCall
	if err := json.Unmarshal(msg.Data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// runs reports whether the server runs function for master.
func (s *server) runs(t *testing.T, master, function string) bool {
	t.Helper()
	for _, c := range s.pendingCalls(t) {
		if c.Master == master && c.Function == function {
			return true
		}
	}
	return false
}

// leases asks the server for the leases it holds, by master id.
func (s *server) leases(t *testing.T) map[string]int64 {
	t.Helper()
	nc, err := nats.Connect(s.url, nats.Token(s.token))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg, err := nc.Request(wire.ControlSubject("server", "leases"), nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]int64
	if err := json.Unmarshal(msg.Data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// refs asks the server for the objects it holds.
func (s *server) refs(t *testing.T) []worker.ObjectInfo {
	t.Helper()
	nc, err := nats.Connect(s.url, nats.Token(s.token))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg, err := nc.Request(wire.ControlSubject("server", "refs"), nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var out []worker.ObjectInfo
	if err := json.Unmarshal(msg.Data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// holders counts the objects each master holds on the server.
func holders(objs []worker.ObjectInfo) map[string]int {
	out := map[string]int{}
	for _, o := range objs {
		for h := range o.Holders {
			out[h]++
		}
	}
	return out
}

// startClient runs a master process connected to addr and returns its
// master id.
func startClient(t *testing.T, addr, token string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(binClient, addr, token)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("client printed no master id: %v", err)
	}
	return cmd, strings.TrimSpace(line)
}

func TestServerManyMasters(t *testing.T) {
	ctx := testCtx(t)
	srv := startServer(t, binProcessional)
	tcpClient, tcpID := startClient(t, srv.url, srv.token)
	_, unixID := startClient(t, srv.socket, srv.token)
	me, err := master.Connect(ctx, srv.url, master.WithToken(srv.token))
	if err != nil {
		t.Fatal(err)
	}
	defer me.Close()
	// A call of mine that runs across the other master's death and lapse.
	mine := master.Schedule(ctx, me, Sleep, 3*master.DefaultLease)
	leases := srv.leases(t)
	for _, id := range []string{tcpID, unixID, me.Master().ID()} {
		if _, ok := leases[id]; !ok {
			t.Fatalf("leases %v lack master %s", leases, id)
		}
	}
	// One master dies: its state goes when its lease lapses, about a
	// lease after its last heartbeat (asserted within three leases, a
	// margin for a loaded machine), and no one else's goes.
	tcpClient.Process.Kill()
	took := pollUntil(t, 3*master.DefaultLease, "the killed master's lease to go", func() bool {
		_, held := srv.leases(t)[tcpID]
		return !held
	})
	t.Logf("the killed master's state went after %s", took)
	if _, ok := srv.leases(t)[unixID]; !ok {
		t.Fatalf("the socket client's lease went with the killed one: %v", leases)
	}
	if mine.Available() {
		t.Fatal("my call ended with the other master's lapse")
	}
	if _, err := mine.Wait(ctx); err != nil {
		t.Fatalf("my call across the other master's death: %v", err)
	}
	if n, err := master.Invoke(ctx, me, Sum, []int{2, 3}); n != 5 || err != nil {
		t.Fatalf("after: %d, %v", n, err)
	}
}

// A master killed with SIGKILL while it holds objects on a server: its
// lease lapses, and the server drops its objects and no one else's.
func TestServerRefsOfKilledMaster(t *testing.T) {
	ctx := testCtx(t)
	srv := startServer(t, binProcessional)
	client, clientID := startClient(t, srv.url, srv.token)
	me, err := master.Connect(ctx, srv.url, master.WithToken(srv.token))
	if err != nil {
		t.Fatal(err)
	}
	defer me.Close()
	mine, err := master.Wrap(ctx, me, builtin.NewCounter, 40)
	if err != nil {
		t.Fatal(err)
	}
	h := holders(srv.refs(t))
	if h[clientID] != 3 || h[me.Master().ID()] != 1 {
		t.Fatalf("holders %v: want 3 objects of %s and 1 of mine", h, clientID)
	}
	if !srv.runs(t, clientID, "count") {
		t.Fatalf("the client's stream does not run on the server: %v", srv.pendingCalls(t))
	}
	client.Process.Kill()
	// Its stream's producer, held back by its window, sees its context
	// end with the lease, about a lease after the master's last heartbeat
	// (asserted within three leases, a margin for a loaded machine); its
	// objects go with the lease too.
	took := pollUntil(t, 3*master.DefaultLease, "the killed master's stream to end", func() bool {
		return !srv.runs(t, clientID, "count")
	})
	t.Logf("the killed master's stream ended after %s", took)
	took += pollUntil(t, 3*master.DefaultLease-took, "the killed master's objects to go", func() bool {
		return holders(srv.refs(t))[clientID] == 0
	})
	t.Logf("the killed master's objects went after %s", took)
	if n, err := master.Method[int64](ctx, mine, "Add", 2).Wait(ctx); err != nil || n != 42 {
		t.Fatalf("my object after the other master's death: %d, %v", n, err)
	}
	// My release is a message of its own, unanswered: the server's table
	// is what shows it arrived.
	mine.Close()
	pollUntil(t, 10*time.Second, "the server to hold no object", func() bool { return len(srv.refs(t)) == 0 })
}

// pollUntil asks cond until it holds, and returns how long that took; it
// fails the test, saying it waited for what, once within has passed. It
// is for conditions that only a question shows (another process's
// state): each ask is a real observation, no guess at a delay.
func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("waited %s for %s", time.Since(start).Round(time.Millisecond), what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func TestServerStops(t *testing.T) {
	for _, how := range []string{"signal", "client"} {
		t.Run(how, func(t *testing.T) {
			ctx := testCtx(t)
			srv := startServer(t, binProcessional)
			s, err := master.Connect(ctx, srv.socket, master.WithToken(srv.token))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// A call that runs, as the server says, when it is stopped;
			// long enough that a loaded machine still sees it running.
			running := master.Schedule(ctx, s, Sleep, time.Second)
			pollUntil(t, 10*time.Second, "the call to run on the server", func() bool {
				for _, c := range srv.pendingCalls(t) {
					if c.Master == s.Master().ID() && c.Function == Sleep.Name() && c.State == "running" {
						return true
					}
				}
				return running.Available() // ended unseen: fails below
			})
			if running.Available() {
				t.Fatal("the call ended before the server was stopped: nothing to prove")
			}
			if how == "client" {
				if err := s.StopServer(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				srv.cmd.Process.Signal(syscall.SIGTERM)
			}
			if _, err := running.Wait(ctx); err != nil {
				t.Fatalf("a call running when the server stopped: %v", err)
			}
			_, err = master.Invoke(ctx, s, Sum, []int{1})
			if !errors.Is(err, bus.ErrClosed) && !errors.Is(err, bus.ErrWorkerLost) {
				t.Fatalf("a call to a stopped server: %v, want ErrClosed or ErrWorkerLost", err)
			}
			if err := srv.cmd.Wait(); err != nil {
				t.Fatalf("server exit: %v", err)
			}
		})
	}
}

func TestServerKilled(t *testing.T) {
	ctx := testCtx(t)
	srv := startServer(t, binProcessional)
	s, err := master.Connect(ctx, srv.url, master.WithToken(srv.token))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pending := master.Thread(ctx, s, Sleep, time.Hour)
	if _, err := master.Invoke(ctx, s, Getpid, struct{}{}); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(srv.cmd.Process.Pid, syscall.SIGKILL)
	start := time.Now()
	bounded, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := pending.Wait(bounded); !errors.Is(err, bus.ErrWorkerLost) {
		t.Fatalf("a call on a killed server: %v, want ErrWorkerLost", err)
	}
	t.Logf("noticed the server's death after %s", time.Since(start))
	if !proctest.Gone(srv.cmd.Process.Pid, time.Second) {
		t.Fatal("server still runs")
	}
}

func TestServerProtocolMismatch(t *testing.T) {
	srv := startServer(t, binMismatch)
	_, err := master.Connect(testCtx(t), srv.url, master.WithToken(srv.token))
	if !errors.Is(err, bus.ErrProtocolVersion) {
		t.Fatalf("err = %v, want ErrProtocolVersion", err)
	}
}

// The stock nats CLI's way: a JSON request on proc.<worker>.json.<function>
// of a real server, answered with JSON.
func TestServerJSONCalls(t *testing.T) {
	srv := startServer(t, binProcessional)
	nc, err := nats.Connect(srv.url, nats.Token(srv.token))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg, err := nc.Request(wire.JSONSubject("server", "sum"), []byte("[1,2,3]"), 10*time.Second)
	if err != nil || string(msg.Data) != "6" {
		t.Fatalf("sum [1,2,3]: %v, %v", msg, err)
	}
	msg, err = nc.Request(wire.JSONSubject("server", "sum"), []byte(`[1,"two"]`), 10*time.Second)
	if err != nil || msg.Header.Get("Nats-Service-Error-Code") != "400" || !strings.Contains(string(msg.Data), "got JSON string") {
		t.Fatalf("sum [1,\"two\"]: %v, %v", msg, err)
	}
}
