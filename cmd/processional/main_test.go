package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 0},
		{[]string{"help"}, 0},
		{[]string{"--help"}, 0},
		{[]string{"no-such-command"}, 2},
		{[]string{"bench", "--no-such-flag"}, 2},
		{[]string{"bench", "extra-argument"}, 2},
		{[]string{"bench", "--help"}, 0},
		{[]string{"demo", "--help"}, 0},
		{[]string{"bench", "--only", "no_such_row"}, 1},
		{[]string{"bench", "--only", "lean_worker_rss_mb", "--lean-worker", "/no/such/binary"}, 1},
	} {
		if got := run(tc.args); got != tc.want {
			t.Errorf("processional %v: exit %d, want %d", tc.args, got, tc.want)
		}
	}
}

// bench --help lists every row a run can print but the baselines, each
// once, the lane's rows among them.
func TestBenchRows(t *testing.T) {
	var buf bytes.Buffer
	writeBenchRows(&buf)
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		name := strings.Fields(line)[0]
		if seen[name] {
			t.Errorf("row %s listed twice", name)
		}
		seen[name] = true
	}
	for row, against := range map[string]string{
		"invoke_rtt": "nats_rtt", "lane_rtt": "unix_rtt", "nats_invoke_rtt": "nats_rtt", "unix_rtt": "nats_rtt",
		"proxy_call": "nats_rtt", "pipelined": "nats_pipelined", "orphan_exit_pipe": "lease", "orphan_exit": "lease",
	} {
		if !regexp.MustCompile(`(?m)^  ` + row + ` +against ` + against + `\b`).MatchString(buf.String()) {
			t.Errorf("no line for %s against %s in\n%s", row, against, buf.String())
		}
	}
}
