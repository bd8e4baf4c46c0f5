package proctest

import (
	"os"
	"testing"
)

// NeedRoot skips t unless the test runs as root, saying why it needs root.
// As root it returns: whatever the test then cannot do (mount, make a
// bridge, find a command) must fail it, not skip it, for CI runs as root
// and a skip there would hide the test.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root, as in CI: %s", why)
	}
}
