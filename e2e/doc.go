// Package e2e holds processional's end-to-end tests and benchmarks: they
// build the real binaries, spawn real worker processes over a real NATS
// server, kill them with real signals, and check that no process outlives
// a test. It has no code of its own besides tests.
package e2e
