//go:build !race

package master

// raceEnabled: this is a race-detector build.
const raceEnabled = false
