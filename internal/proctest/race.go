package proctest

import (
	"os"
	"strings"
)

// NoRaceExitSleep makes the race-built processes the tests start (the test
// binary spawned as a worker, helper binaries) exit at once. The race
// detector sleeps a second at exit by default (GORACE atexit_sleep_ms): a
// worker that stopped serving answers no heartbeat meanwhile, for as long
// as the default lease, so its master takes it for lost. Call it in
// TestMain before the tests start processes; it keeps an atexit_sleep_ms
// already set in GORACE.
func NoRaceExitSleep() {
	g := os.Getenv("GORACE")
	if !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
}
