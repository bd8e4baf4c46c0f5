package cli

import (
	"flag"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConnFlagsDefaultToTheEnvironment(t *testing.T) {
	t.Setenv("PROCESSIONAL_NATS", "nats://10.0.0.1:4222")
	t.Setenv("PROCESSIONAL_TOKEN", "tok")
	t.Setenv("PROCESSIONAL_USER", "u")
	t.Setenv("PROCESSIONAL_PASSWORD", "pw")
	t.Setenv("PROCESSIONAL_CREDS", "/c.creds")
	for _, tc := range []struct {
		name string
		args []string
		want ConnFlags
	}{
		{"environment", nil, ConnFlags{URL: "nats://10.0.0.1:4222", Token: "tok", User: "u", Password: "pw", Creds: "/c.creds", Retries: 5}},
		{"flags win", []string{"--nats", "nats://h:1", "--token", "t2", "--retries", "1"}, ConnFlags{URL: "nats://h:1", Token: "t2", User: "u", Password: "pw", Creds: "/c.creds", Retries: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			c := AddConnFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if *c != tc.want {
				t.Fatalf("got %+v, want %+v", *c, tc.want)
			}
		})
	}
}

func TestWorkerExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--help"}, 0},
		{[]string{"--no-such-flag"}, 2},
		{[]string{"extra"}, 2},
		{[]string{"--max-pending", "-1"}, 1},
		{[]string{"--nats", "nats://127.0.0.1:1", "--retries", "1"}, 1},
		{[]string{"--tlscert", "/no/such.pem", "--tlskey", "/no/such-key.pem"}, 1},
	} {
		if got := Worker("test-worker", tc.args); got != tc.want {
			t.Errorf("Worker %v: exit %d, want %d", tc.args, got, tc.want)
		}
	}
}
