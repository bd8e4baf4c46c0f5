//go:build linux

package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// netHost is a network namespace the run made for one CLI worker: a host
// of its own, joined to this one by a veth pair, whose link the chaos
// cuts.
type netHost struct {
	ns, veth, peer string // the namespace; the interface in it; its peer here
	hostIP, nsIP   string
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// netCutPossible says why the run cannot cut links, "" when it can: it
// needs root and the ip command.
func netCutPossible() string {
	if os.Geteuid() != 0 {
		return "not root: no network namespace"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "no ip command (iproute2)"
	}
	return ""
}

// newNetHost makes the namespace and its link, with private addresses of
// a /30 picked at random in 10.0.0.0/8.
func newNetHost(run string, rng *rand.Rand) (*netHost, error) {
	tag := run[len(run)-6:]
	a, b := 100+rng.IntN(150), rng.IntN(64)*4
	h := &netHost{ns: "pchaos" + tag, veth: "vc" + tag, peer: "hc" + tag,
		hostIP: fmt.Sprintf("10.%d.%d.%d", a, rng.IntN(256), b+1)}
	h.nsIP = h.hostIP[:strings.LastIndexByte(h.hostIP, '.')+1] + fmt.Sprint(b+2)
	steps := [][]string{
		{"netns", "add", h.ns},
		{"link", "add", h.peer, "type", "veth", "peer", "name", h.veth},
		{"link", "set", h.veth, "netns", h.ns},
		{"addr", "add", h.hostIP + "/30", "dev", h.peer},
		{"link", "set", h.peer, "up"},
		{"-n", h.ns, "addr", "add", h.nsIP + "/30", "dev", h.veth},
		{"-n", h.ns, "link", "set", h.veth, "up"},
		{"-n", h.ns, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			h.remove()
			return nil, err
		}
	}
	return h, nil
}

// cut takes the namespace's link down (up false) or back up.
func (h *netHost) set(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ip("-n", h.ns, "link", "set", h.veth, state)
}

// remove kills what still runs in the namespace and removes it, with its
// link; it is safe on a half-made host.
func (h *netHost) remove() {
	if out, err := exec.Command("ip", "netns", "pids", h.ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			var pid int
			fmt.Sscan(f, &pid)
			if pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	ip("link", "del", h.peer) // takes its peer with it
	ip("netns", "del", h.ns)
}
