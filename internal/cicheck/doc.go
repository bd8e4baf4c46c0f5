// Command cicheck reads the events of `go test -json` on its standard
// input and writes what plain `go test` writes of a list of packages: a
// summary line per package and, for a package that failed, the output of
// its failed tests. It then lists the tests that skipped, with why, and
// the counts of tests passed, failed and skipped.
//
//	go test -race -count=1 -timeout 20m -json ./... | go run ./internal/cicheck
//
// It exits 1 when a build, a package or a test failed, when no package was
// tested, when the output holds a race report (from a race-built process a
// test started, which the test may not have noticed), or when, running as
// root, a test skipped saying it needs root: CI runs as root, where a test
// that needs root must run (see proctest.NeedRoot), and go test without -v
// would not show its skip.
package main
