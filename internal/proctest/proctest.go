// Package proctest helps tests check that the processes they started are
// gone.
package proctest

import "time"

// Gone reports whether process pid no longer runs, waiting up to d for it.
// A zombie counts as gone: it runs no more, and only waits for its parent
// to reap it.
func Gone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !running(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
