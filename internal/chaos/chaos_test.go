//go:build linux

package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/proctest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err      error
		kind     string
		expected bool
	}{
		{nil, "", true},
		{fmt.Errorf("call 3: %w", context.DeadlineExceeded), "deadline", true},
		{fmt.Errorf("worker w (pid 1) exited: %w", bus.ErrWorkerLost), "worker_lost", true},
		{errors.Join(bus.ErrWorkerLost, bus.ErrBadPayload), "worker_lost", true}, // a broken lane: its worker was killed
		{nats.ErrNoResponders, "no_responders", true},
		{fmt.Errorf("decode: %w", bus.ErrBadPayload), "bad_payload", false},
		{fmt.Errorf("x: %w", ErrForeignBuffer), "foreign_buffer", false},
		{errors.New("something"), Unnamed, false},
	} {
		kind, expected := Classify(tc.err)
		if kind != tc.kind || expected != tc.expected {
			t.Errorf("Classify(%v) = %q %v, want %q %v", tc.err, kind, expected, tc.kind, tc.expected)
		}
	}
}

// Each task's answers are its own: two ids never give the same Mix nor
// the same pattern, and Reversed undoes itself.
func TestAnswersAreTheTasksOwn(t *testing.T) {
	seen := map[uint64]bool{}
	for id := range uint64(100000) {
		if m := Mix(id); seen[m] {
			t.Fatalf("Mix(%d) repeats", id)
		} else {
			seen[m] = true
		}
	}
	a, b := make([]byte, 100), make([]byte, 100)
	Pattern(1, a)
	Pattern(2, b)
	if slices.Equal(a, b) {
		t.Fatal("two ids, one pattern")
	}
	if back := Reversed(Reversed(a)); !slices.Equal(back, a) {
		t.Fatal("Reversed twice is not the identity")
	}
}

// The orphan scan finds a process by the run's mark, and no longer once
// it is gone.
func TestMarked(t *testing.T) {
	run := fmt.Sprintf("test%d", time.Now().UnixNano())
	cmd := exec.Command("sleep", "60")
	cmd.Env = append(os.Environ(), RunEnv+"="+run)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if got := marked(run); !slices.Equal(got, []int{pid}) {
		t.Errorf("marked: %v, want [%d]", got, pid)
	}
	if got := marked(run + "x"); len(got) != 0 {
		t.Errorf("another run's mark found %v", got)
	}
	cmd.Process.Kill()
	if !proctest.Gone(pid, 5*time.Second) {
		t.Fatal("sleep outlived SIGKILL")
	}
	if got := marked(run); len(got) != 0 {
		t.Errorf("a killed process (a zombie) counts: %v", got)
	}
	cmd.Wait()
}

// Found by CI (TestChaos under -race): a master is reaped while its last
// lines still wait in its channel, so its "bye" and its last tasks could
// be counted after the orchestrator read them (a race report, and a
// master wrongly said not to have stopped cleanly). mp.read and the
// readers' group order them before any read.
func TestReaderTakesInLastLines(t *testing.T) {
	o := &orch{log: &lockedFile{w: io.Discard}, stuck: map[uint64]bool{},
		s: Summary{Errors: map[string]int{}, Ops: map[string]int{}}}
	p := &proc{name: "m0", lines: make(chan string, 4), done: make(chan struct{})}
	p.lines <- `{"ev":"task","task":1,"op":"invoke"}`
	p.lines <- `{"ev":"bye"}`
	close(p.lines)
	close(p.done) // reaped, its lines not yet taken in
	mp := &masterProc{p: p, children: map[string]int{}, samples: make(chan Event, 4), read: make(chan struct{})}
	o.readers.Add(1)
	go o.readMaster("m0", mp, make(chan struct{}))
	<-mp.read
	if !mp.bye || o.s.Tasks != 1 || o.s.OK != 1 { // unlocked: under -race, only mp.read orders these reads
		t.Errorf("bye %v, tasks %d, ok %d: want true, 1, 1", mp.bye, o.s.Tasks, o.s.OK)
	}
	o.readers.Wait()
}

// A race report in any process's log fails the run, whatever its exit.
func TestRaceReports(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"cw1.log":   "worker cw1 serving\n==================\nWARNING: DATA RACE\nWrite at 0x00c000123 by goroutine 7:\n",
		"m0.log":    "[m0-s0-1] WARNING: DATA RACE\n",
		"nats0.log": "nats listening\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := raceReports(dir); !slices.Equal(got, []string{"cw1", "m0"}) {
		t.Fatalf("raceReports: %v, want [cw1 m0]", got)
	}
}

// A log an earlier run left in a directory given again is emptied at the
// run's first start of its process, not at a restart within the run.
func TestLogFileStartsEmpty(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cw1.log")
	if err := os.WriteFile(path, []byte("WARNING: DATA RACE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := &orch{c: Config{Dir: dir}}
	if got := o.logFile("cw1"); got != path {
		t.Fatalf("logFile: %s, want %s", got, path)
	}
	if b, _ := os.ReadFile(path); len(b) != 0 || len(raceReports(dir)) != 0 {
		t.Fatalf("an earlier run's log kept: %q", b)
	}
	os.WriteFile(path, []byte("this run's first process\n"), 0o644)
	o.logFile("cw1") // started again within the run
	if b, _ := os.ReadFile(path); string(b) != "this run's first process\n" {
		t.Fatalf("a restart emptied the run's own log: %q", b)
	}
}
