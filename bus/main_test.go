package bus_test

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/worker"
)

// TestMain lets the test binary double as the worker of the tests that
// call a real worker process (errors_remote_test.go, the examples).
func TestMain(m *testing.M) {
	if worker.Main() {
		return
	}
	proctest.NoRaceExitSleep()
	goleak.VerifyTestMain(m)
}

// panicValue runs f and returns what it panicked with, as a string, and
// whether it panicked.
func panicValue(f func()) (msg string, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			msg, panicked = fmtAny(r), true
		}
	}()
	f()
	return "", false
}

func fmtAny(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case error:
		return v.Error()
	}
	return "unexpected panic value"
}

// wantSubstrings fails t unless s contains every one of subs.
func wantSubstrings(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s %q does not contain %q", what, s, sub)
		}
	}
}
