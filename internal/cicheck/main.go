package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

func main() {
	if !check(os.Stdin, os.Stdout, os.Geteuid() == 0) {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// line is one line of a test's output.
type line struct{ test, text string }

// pkg is what the checker keeps of a package until it ends.
type pkg struct {
	lines   []string          // the package's own output
	running map[string][]line // the output of each top-level test still running
	order   []string          // top-level tests in the order they started
	failed  []line            // the output of the top-level tests that failed
	raced   map[string]bool   // top-level tests ("" for the package) whose output holds a race report
}

// skip is a test that skipped, and why.
type skip struct{ pkg, test, why string }

// checker follows go test's events.
type checker struct {
	out                     io.Writer
	pkgs                    map[string]*pkg
	skips                   []skip
	races                   []string // package and test of each output with a race report
	passed, failed, skipped int
	packages                int  // packages that ended
	ok                      bool // no build, package or test failed
}

// raceReport starts the race detector's report of a data race.
const raceReport = "WARNING: DATA RACE"

// needsRoot matches a skip's reason that says the test needs root.
var needsRoot = regexp.MustCompile(`(?i)\broot\b`)

// check reads go test's events from in and writes the report to out; it
// reports whether all went well. root says whether the tests ran as root.
func check(in io.Reader, out io.Writer, root bool) bool {
	c := &checker{out: out, pkgs: map[string]*pkg{}, ok: true}
	r := bufio.NewReader(in)
	for {
		raw, err := r.ReadBytes('\n')
		var e event
		if len(raw) > 0 && (raw[0] != '{' || json.Unmarshal(raw, &e) != nil) {
			out.Write(raw) // not an event: the go command's own
		} else if len(raw) > 0 {
			c.event(e)
		}
		if err != nil {
			break
		}
	}
	for name, p := range c.pkgs {
		fmt.Fprintf(out, "cicheck: package %s never ended\n", name)
		p.report(out)
		c.ok = false
	}
	var rootSkips []skip
	if len(c.skips) > 0 {
		fmt.Fprintf(out, "\nskipped:\n")
		for _, s := range c.skips {
			fmt.Fprintf(out, "  %s %s: %s\n", s.pkg, s.test, s.why)
			if root && needsRoot.MatchString(s.why) {
				rootSkips = append(rootSkips, s)
			}
		}
	}
	if len(rootSkips) > 0 {
		c.ok = false
		fmt.Fprintf(out, "\ncicheck: these tests skipped for want of root, yet they ran as root; there they must run, or fail:\n")
		for _, s := range rootSkips {
			fmt.Fprintf(out, "  %s %s\n", s.pkg, s.test)
		}
	}
	if len(c.races) > 0 {
		fmt.Fprintf(out, "\ncicheck: race reports in the output of:\n")
		for _, r := range c.races {
			fmt.Fprintf(out, "  %s\n", r)
		}
	}
	if c.packages == 0 {
		c.ok = false
		fmt.Fprintln(out, "cicheck: no package was tested")
	}
	fmt.Fprintf(out, "\ntests: %d passed, %d failed, %d skipped\n", c.passed, c.failed, c.skipped)
	return c.ok
}

// event takes one event in.
func (c *checker) event(e event) {
	switch e.Action {
	case "build-output":
		io.WriteString(c.out, e.Output)
		return
	case "build-fail":
		c.ok = false
		return
	}
	if e.Package == "" {
		return
	}
	p := c.pkgs[e.Package]
	if p == nil {
		p = &pkg{running: map[string][]line{}, raced: map[string]bool{}}
		c.pkgs[e.Package] = p
	}
	ended := e.Action == "pass" || e.Action == "fail" || e.Action == "skip"
	top, _, _ := strings.Cut(e.Test, "/")
	if e.Action == "output" && strings.Contains(e.Output, raceReport) && !p.raced[top] {
		// A process the test started, race-built, reports a race: the
		// test may not notice (the process was killed, or its exit status
		// is not checked), but CI must.
		p.raced[top] = true
		c.races = append(c.races, strings.TrimSpace(e.Package+" "+top))
		c.ok = false
	}
	if e.Test == "" {
		switch {
		case e.Action == "output":
			p.lines = append(p.lines, e.Output)
		case e.Action == "fail" || ended && p.raced[""]:
			c.ok = false
			p.report(c.out)
		case ended && len(p.lines) > 0:
			io.WriteString(c.out, p.lines[len(p.lines)-1]) // its summary: ok, or no test files
		}
		if ended {
			c.packages++
			delete(c.pkgs, e.Package)
		}
		return
	}
	switch e.Action {
	case "output":
		if _, seen := p.running[top]; !seen {
			p.order = append(p.order, top)
		}
		p.running[top] = append(p.running[top], line{e.Test, e.Output})
	case "pass":
		c.passed++
	case "fail":
		c.failed++
		c.ok = false
	case "skip":
		c.skipped++
		c.skips = append(c.skips, skip{e.Package, e.Test, p.why(top, e.Test)})
	}
	if ended && e.Test == top {
		if e.Action == "fail" || p.raced[top] {
			p.failed = append(p.failed, p.running[top]...)
			p.raced[""] = p.raced[""] || p.raced[top] // the package's report shows it
		}
		delete(p.running, top)
	}
}

// why is what test (under top-level test top) said before it skipped.
func (p *pkg) why(top, test string) string {
	var said []string
	for _, l := range p.running[top] {
		s := strings.TrimSpace(l.text)
		if l.test == test && !framing(s) && !strings.HasPrefix(s, "--- SKIP") {
			said = append(said, s)
		}
	}
	return strings.Join(said, " / ")
}

// report writes what a failed package said: the output of its failed
// tests, then of those that never ended (a panic, a timeout), then its own.
func (p *pkg) report(out io.Writer) {
	all := p.failed
	for _, top := range p.order {
		all = append(all, p.running[top]...)
	}
	for _, l := range all {
		if !framing(l.text) {
			io.WriteString(out, l.text)
		}
	}
	for _, l := range p.lines {
		io.WriteString(out, l)
	}
}

// framing reports whether s is one of the lines go test -v adds to say
// which test runs, which plain go test leaves out.
func framing(s string) bool {
	for _, f := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME"} {
		if strings.HasPrefix(s, f) {
			return true
		}
	}
	return false
}
