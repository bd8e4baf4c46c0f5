//go:build !race

package leasesoak

const raceEnabled = false
