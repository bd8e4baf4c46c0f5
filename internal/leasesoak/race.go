//go:build race

package leasesoak

const raceEnabled = true
