//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
)

// Three hosts, made of network namespaces joined by veth pairs on a
// bridge: a NATS server in each, clustered by routes; a worker (in pool
// "p") in hosts a and b; a master in host c. Only addresses inside these
// namespaces are used.

type netHosts struct {
	t      *testing.T
	prefix string
	bridge string
	names  []string // namespaces
	ips    []string
	token  string
	stderr map[*exec.Cmd]*lockedBuffer // what each process started said
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func newNetHosts(t *testing.T) *netHosts {
	t.Helper()
	proctest.NeedRoot(t, "to make network namespaces")
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("no ip command: install iproute2 (.ci/run does)")
	}
	id := wire.NewID("n")[2:8]
	h := &netHosts{t: t, prefix: "pn" + id, bridge: "pb" + id, token: wire.NewID("tok")}
	t.Cleanup(h.teardown)
	if err := ipCmd("link", "add", h.bridge, "type", "bridge"); err != nil {
		t.Fatalf("root cannot make a bridge: %v", err)
	}
	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("link", "set", h.bridge, "up")
	for i, host := range []string{"a", "b", "c"} {
		ns := h.prefix + host
		veth, peer := "v"+id+host, "h"+id+host
		ip := fmt.Sprintf("10.199.%d.%d", 77, i+1)
		must("netns", "add", ns)
		h.names, h.ips = append(h.names, ns), append(h.ips, ip)
		must("link", "add", veth, "type", "veth", "peer", "name", peer)
		must("link", "set", veth, "netns", ns)
		must("link", "set", peer, "master", h.bridge)
		must("link", "set", peer, "up")
		must("-n", ns, "addr", "add", ip+"/24", "dev", veth)
		must("-n", ns, "link", "set", veth, "up")
		must("-n", ns, "link", "set", "lo", "up")
	}
	return h
}

// veth names host i's interface, inside its namespace.
func (h *netHosts) veth(i int) string { return "v" + h.prefix[2:] + string(rune('a'+i)) }

func (h *netHosts) teardown() {
	for _, ns := range h.names {
		// Whatever still runs in the namespace goes with it.
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				var pid int
				fmt.Sscan(f, &pid)
				if pid > 0 {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		ipCmd("netns", "del", ns)
	}
	ipCmd("link", "del", h.bridge)
}

// start runs binary with args in host i's namespace, and returns it with
// its first line of output.
func (h *netHosts) start(i int, binary string, args ...string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	h.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.names[i], binary}, args...)...)
	if h.stderr == nil {
		h.stderr = map[*exec.Cmd]*lockedBuffer{}
	}
	h.stderr[cmd] = &lockedBuffer{}
	cmd.Stderr = io.MultiWriter(os.Stderr, h.stderr[cmd])
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd, stdin, bufio.NewReader(out)
}

func (h *netHosts) natsURL(i int) string { return "nats://" + h.ips[i] + ":4222" }

func readLine(t *testing.T, r *bufio.Reader, what string) string {
	t.Helper()
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() { l, err := r.ReadString('\n'); ch <- res{strings.TrimSpace(l), err} }()
	select {
	case x := <-ch:
		if x.err != nil {
			t.Fatalf("%s: %v", what, x.err)
		}
		return x.line
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: nothing within 30s", what)
	}
	return ""
}

func TestMultiHost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three hosts")
	}
	h := newNetHosts(t)
	// Every host speaks TLS to its clients and verifies their
	// certificates, made here for the three addresses.
	ca := newPKI(t, "processional-hosts")
	srvCert, srvKey := ca.issue(t, "nats-hosts", true, h.ips[:]...)
	cert, key := ca.issue(t, "client", false)
	serverTLS := []string{"--tlscert", srvCert, "--tlskey", srvKey, "--tlsca", ca.file}
	clientTLS := []string{"--tlscert", cert, "--tlskey", key, "--tlsca", ca.file}
	var servers []*exec.Cmd
	for i := range 3 {
		var routes []string
		for j := range 3 {
			if j != i {
				routes = append(routes, "nats://"+h.ips[j]+":6222")
			}
		}
		cmd, _, out := h.start(i, binProcessional, append([]string{"nats", "--listen", h.ips[i] + ":4222", "--token", h.token,
			"--name", "host-" + string(rune('a'+i)), "--cluster", h.ips[i] + ":6222", "--routes", strings.Join(routes, ",")}, serverTLS...)...)
		if line := readLine(t, out, "nats server"); !strings.HasPrefix(line, "nats ") {
			t.Fatalf("nats server %d said %q", i, line)
		}
		servers = append(servers, cmd)
	}
	// Told to listen beyond loopback, a server says so.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(h.stderr[servers[0]].String(), "listens beyond loopback host="+h.ips[0]); {
		if time.Now().After(deadline) {
			t.Fatalf("processional nats on %s did not warn that it listens beyond loopback; it said:\n%s", h.ips[0], h.stderr[servers[0]])
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Workers on a and b, each with the other servers to fail over to.
	var workers []*exec.Cmd
	for i, id := range []string{"wa", "wb"} {
		urls := h.natsURL(i) + "," + h.natsURL(2)
		cmd, _, out := h.start(i, binProcessional, append([]string{"worker", "--nats", urls, "--token", h.token, "--id", id, "--pool", "p"}, clientTLS...)...)
		if line := readLine(t, out, "worker "+id); !strings.HasPrefix(line, "worker "+id+" serving") {
			t.Fatalf("worker %s said %q", id, line)
		}
		workers = append(workers, cmd)
	}
	_, in, out := h.start(2, binNetmaster, h.natsURL(2), h.token, cert, key, ca.file)
	if line := readLine(t, out, "master"); line != "ok ready" {
		t.Fatalf("master said %q", line)
	}
	ask := func(cmd string) string {
		t.Helper()
		fmt.Fprintln(in, cmd)
		return readLine(t, out, cmd)
	}
	// eventually asks cmd until the answer is ok or within has passed.
	eventually := func(what, cmd string, ok func(string) bool, within time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(within); ; time.Sleep(200 * time.Millisecond) {
			line := ask(cmd)
			if ok(line) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s", what, line)
			}
		}
	}
	succeeds := func(line string) bool { return strings.HasPrefix(line, "ok ") }
	// Routes take a moment to carry every interest: retry the first call.
	for _, w := range []string{"wa", "wb"} {
		eventually("invoke "+w+" across the cluster", "invoke "+w, succeeds, 20*time.Second)
	}
	if line := ask("proxy wb"); line != "ok 42" {
		t.Fatalf("a proxy across hosts: %s", line)
	}
	if line := ask("map"); line != "ok 200 items, members 2" {
		t.Fatalf("a pool Map across hosts: %s", line)
	}

	// One NATS server stops: the worker on it reconnects to another, and
	// calls keep flowing.
	syscall.Kill(-servers[1].Process.Pid, syscall.SIGKILL)
	eventually("invoke wb after its server stopped", "invoke wb", succeeds, 20*time.Second)

	// Host a's link is cut: a call held there fails within about a lease
	// (lostWithin), and
	// the worker drops the master's state; once the link is back, new
	// calls work.
	if line := ask("leases wa"); line != "ok 1" {
		t.Fatalf("leases on wa before the cut: %s, want the master's one", line)
	}
	if line := ask("hold wa"); line != "ok held" { // answered once wa runs it
		t.Fatalf("hold: %s", line)
	}
	if err := ipCmd("-n", h.names[0], "link", "set", h.veth(0), "down"); err != nil {
		t.Fatal(err)
	}
	line := ask("wait")
	lostWithin(t, "a call on a cut-off host", line)
	t.Logf("cut-off host: the held call failed: %s", line)
	// The cut lasts past the worker's side of the lease too: the outage
	// under test, whose end nothing outside the cut-off host can see.
	time.Sleep(1500 * time.Millisecond)
	if err := ipCmd("-n", h.names[0], "link", "set", h.veth(0), "up"); err != nil {
		t.Fatal(err)
	}
	// The worker dropped the master it no longer heard: it holds no lease.
	// (The route is coming back meanwhile.)
	eventually("the cut-off worker's leases once its link is back, want none", "leases wa",
		func(line string) bool { return line == "ok 0" }, 20*time.Second)
	eventually("invoke wa once its link is back", "invoke wa", succeeds, 30*time.Second)

	// A worker's processes are killed: a call held there fails within
	// about a lease (lostWithin) with the worker-lost error.
	if line := ask("hold wb"); line != "ok held" { // answered once wb runs it
		t.Fatalf("hold: %s", line)
	}
	syscall.Kill(-workers[1].Process.Pid, syscall.SIGKILL)
	line = ask("wait")
	lostWithin(t, "a call on a killed worker", line)
	t.Logf("killed worker: %s", line)
}

// lostWithin checks netmaster's answer to "wait": the held call failed
// with ErrWorkerLost within leaseBound of netmaster's lease (the default)
// from the fault.
func lostWithin(t *testing.T, what, line string) {
	t.Helper()
	after, ok := strings.CutPrefix(line, "ok lost after ")
	d, err := time.ParseDuration(after)
	if !ok || err != nil {
		t.Fatalf("%s: %s, want ErrWorkerLost", what, line)
	}
	if bound := leaseBound(master.DefaultLease, master.DefaultLease/4); d > bound {
		t.Fatalf("%s: lost after %s, past the lease's bound of %s", what, d, bound)
	}
}
