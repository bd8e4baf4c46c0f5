package main

import (
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ev is one event of go test -json.
func ev(action, pkg, test, output string) string {
	b, err := json.Marshal(event{Action: action, Package: pkg, Test: test, Output: output})
	if err != nil {
		panic(err)
	}
	return string(b) + "\n"
}

func TestCheck(t *testing.T) {
	passing := ev("start", "p", "", "") +
		ev("run", "p", "TestA", "") +
		ev("output", "p", "TestA", "=== RUN   TestA\n") +
		ev("output", "p", "TestA", "    a_test.go:1: chatter\n") +
		ev("output", "p", "TestA", "--- PASS: TestA (0.00s)\n") +
		ev("pass", "p", "TestA", "") +
		ev("output", "p", "", "PASS\n") +
		ev("output", "p", "", "ok  \tp\t0.1s\n") +
		ev("pass", "p", "", "")
	skipping := func(why string) string {
		return ev("start", "q", "", "") +
			ev("output", "q", "TestR", "=== RUN   TestR\n") +
			ev("output", "q", "TestR/sub", "=== RUN   TestR/sub\n") +
			ev("output", "q", "TestR/sub", "    r_test.go:9: "+why+"\n") +
			ev("output", "q", "TestR/sub", "--- SKIP: TestR/sub (0.00s)\n") +
			ev("skip", "q", "TestR/sub", "") +
			ev("output", "q", "TestR", "--- PASS: TestR (0.00s)\n") +
			ev("pass", "q", "TestR", "") +
			ev("output", "q", "", "ok  \tq\t0.1s\n") +
			ev("pass", "q", "", "")
	}
	failing := ev("start", "f", "", "") +
		ev("output", "f", "TestOK", "=== RUN   TestOK\n") +
		ev("output", "f", "TestOK", "    ok_test.go:1: chatter of a test that passed\n") +
		ev("pass", "f", "TestOK", "") +
		ev("output", "f", "TestBad", "=== RUN   TestBad\n") +
		ev("output", "f", "TestBad", "    bad_test.go:2: it broke\n") +
		ev("output", "f", "TestBad", "--- FAIL: TestBad (0.00s)\n") +
		ev("fail", "f", "TestBad", "") +
		ev("output", "f", "", "FAIL\n") +
		ev("output", "f", "", "FAIL\tf\t0.1s\n") +
		ev("fail", "f", "", "")
	for _, tc := range []struct {
		name    string
		in      string
		root    bool
		ok      bool
		want    []string // in the report
		notWant []string
	}{
		{name: "passing", in: passing, ok: true,
			want:    []string{"ok  \tp\t0.1s\n", "tests: 1 passed, 0 failed, 0 skipped\n"},
			notWant: []string{"chatter", "=== RUN", "PASS\n"}},
		{name: "failing test", in: passing + failing,
			want:    []string{"ok  \tp\t0.1s\n", "    bad_test.go:2: it broke\n--- FAIL: TestBad (0.00s)\nFAIL\nFAIL\tf\t0.1s\n", "tests: 2 passed, 1 failed, 0 skipped\n"},
			notWant: []string{"chatter", "=== RUN"}},
		{name: "skip for root, as root", in: skipping("needs root, as in CI: to mount"), root: true,
			want: []string{"q TestR/sub: r_test.go:9: needs root, as in CI: to mount\n", "for want of root", "  q TestR/sub\n", "1 skipped"}},
		{name: "skip for root, not root", in: skipping("needs root, as in CI: to mount"), ok: true,
			want:    []string{"q TestR/sub: r_test.go:9: needs root, as in CI: to mount\n"},
			notWant: []string{"for want of root"}},
		{name: "other skip, as root", in: skipping("starts processes"), root: true, ok: true,
			want:    []string{"q TestR/sub: r_test.go:9: starts processes\n"},
			notWant: []string{"for want of root"}},
		{name: "build failure",
			in: `{"ImportPath":"b [b.test]","Action":"build-output","Output":"b.go:1: undefined: x\n"}` + "\n" +
				`{"ImportPath":"b [b.test]","Action":"build-fail"}` + "\n" +
				ev("start", "b", "", "") + ev("output", "b", "", "FAIL\tb [build failed]\n") + ev("fail", "b", "", ""),
			want: []string{"b.go:1: undefined: x\n", "FAIL\tb [build failed]\n"}},
		{name: "not events", in: "go: downloading x\n" + passing, ok: true,
			want: []string{"go: downloading x\n"}},
		{name: "race in a passing test",
			in: passing + ev("start", "r", "", "") +
				ev("output", "r", "TestChild", "=== RUN   TestChild\n") +
				ev("output", "r", "TestChild", "[w-1] WARNING: DATA RACE\n") +
				ev("output", "r", "TestChild", "[w-1] Write at 0x00c by goroutine 7:\n") +
				ev("output", "r", "TestChild", "--- PASS: TestChild (0.00s)\n") +
				ev("pass", "r", "TestChild", "") +
				ev("output", "r", "", "ok  \tr\t0.1s\n") +
				ev("pass", "r", "", ""),
			want:    []string{"[w-1] WARNING: DATA RACE\n[w-1] Write at 0x00c by goroutine 7:\n--- PASS: TestChild", "ok  \tr\t0.1s\n", "race reports in the output of:\n  r TestChild\n"},
			notWant: []string{"chatter"}},
		{name: "nothing", in: "", want: []string{"no package was tested"}},
		{name: "cut short",
			in: ev("start", "c", "", "") +
				ev("output", "c", "TestHang", "=== RUN   TestHang\n") +
				ev("output", "c", "TestHang", "panic: test timed out\n"),
			want: []string{"package c never ended", "panic: test timed out\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			ok := check(strings.NewReader(tc.in), &out, tc.root)
			if ok != tc.ok {
				t.Errorf("check = %v, want %v", ok, tc.ok)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("report lacks %q", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("report has %q", w)
				}
			}
			if t.Failed() {
				t.Logf("report:\n%s", out.String())
			}
		})
	}
}
