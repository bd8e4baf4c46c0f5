// Package e2e holds processional's end-to-end tests and benchmarks: they
// build the real binaries, spawn real worker processes over a real NATS
// server, kill them with real signals, and check that no process outlives
// a test. It has no code of its own besides tests. They run on Linux
// (network namespaces, the parent-death signal, /proc): on other systems
// the package builds and holds no test; the mechanisms those systems rely
// on (the lane's EOF, file-backed segments) are exercised on Linux.
package e2e
