package main

import (
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
