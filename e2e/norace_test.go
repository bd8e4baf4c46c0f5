//go:build linux && !race

package e2e

// raceEnabled: the tests run with -race, and so do the binaries they build.
const raceEnabled = false
