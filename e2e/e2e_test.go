//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
	"github.com/processional/processional/shm"
)

// The functions cmd/processional serves, by their typed handles.
var (
	Sum    = builtin.Sum
	Getpid = builtin.Getpid
	Sleep  = builtin.Sleep
	Panic  = builtin.Panic
	// NotOnWorker is registered here only.
	NotOnWorker = bus.Register("e2e.not-on-worker", func(context.Context, int) (int, error) { panic("never runs") })
)

func newMaster(t *testing.T) *master.Master {
	t.Helper()
	m, err := master.New(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func spawn(t *testing.T, m *master.Master, opts ...master.SpawnOption) *master.Slave {
	t.Helper()
	return spawnWith(t, m, append([]master.SpawnOption{master.WithBinary(binProcessional)}, opts...)...)
}

// spawnWith spawns a worker with opts only (by default, the test binary
// itself), terminated when the test ends.
func spawnWith(t *testing.T, m *master.Master, opts ...master.SpawnOption) *master.Slave {
	t.Helper()
	s, err := m.Spawn(testCtx(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Terminate()
		if !proctest.Gone(s.PID(), 5*time.Second) {
			t.Errorf("worker pid %d outlived its test", s.PID())
		}
	})
	return s
}

func TestDemo(t *testing.T) {
	out, err := exec.CommandContext(testCtx(t), binProcessional, "demo").CombinedOutput()
	if err != nil {
		t.Fatalf("processional demo: %v\n%s", err, out)
	}
	for _, want := range []string{"master.Go", "slave thread", "master.Spawn", "Thread(slave", "Schedule(slave", "context canceled", "deadline exceeded", "ErrPanic) = true", "remote stack", "slave.Close()"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestSpawnedBinaryServes(t *testing.T) {
	ctx := testCtx(t)
	m := newMaster(t)
	s := spawn(t, m)
	n, err := master.Invoke(ctx, s, Sum, []int{1, 2, 3})
	if n != 6 || err != nil {
		t.Fatalf("Invoke(sum) = %d, %v", n, err)
	}
	pid, err := master.Invoke(ctx, s, Getpid, struct{}{})
	if err != nil || pid != s.PID() {
		t.Fatalf("getpid = %d, %v; want the worker's pid %d", pid, err, s.PID())
	}
}

func TestBadCalls(t *testing.T) {
	ctx := testCtx(t)
	m := newMaster(t)
	s := spawn(t, m)
	for _, tc := range []struct {
		name  string
		call  func() error
		want  error
		texts []string
	}{
		{"unknown function", func() error { _, err := master.Invoke(ctx, s, NotOnWorker, 1); return err },
			bus.ErrUnknownFunction, []string{"e2e.not-on-worker", s.ID()}},
		{"wrong argument type", func() error { return rawCall(t, m, s, "sha256", map[string]int{"a": 1}) },
			bus.ErrArgumentType, []string{"[]uint8", "map[string]int", "sha256"}},
		{"remote panic", func() error { _, err := master.Invoke(ctx, s, Panic, "boom"); return err },
			bus.ErrPanic, []string{"boom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, text := range tc.texts {
				if !strings.Contains(err.Error(), text) {
					t.Errorf("err = %q, want it to name %q", err, text)
				}
			}
		})
	}
	// The worker still serves after all that.
	if n, err := master.Invoke(ctx, s, Sum, []int{2, 2}); n != 4 || err != nil {
		t.Fatalf("after bad calls: %d, %v", n, err)
	}
}

// rawCall sends a call envelope for function with arg, whatever its type,
// as a master built with another signature for function would.
func rawCall(t *testing.T, m *master.Master, s *master.Slave, function string, arg any) error {
	t.Helper()
	err := forged(t, m.Conn(), s.ID(), &wire.Call{Kind: wire.KindCall, Master: "m-raw", Function: function, ArgType: fmt.Sprintf("%T", arg)}, arg)
	if err == nil {
		t.Fatalf("%s(%T) succeeded", function, arg)
	}
	return err
}

func TestUndecodablePayload(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	msg, err := m.Conn().Request(wire.CallSubject(s.ID()), []byte("not msgpack at all"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, _, remote, err := wire.DecodeReply(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(remote, bus.ErrBadPayload) {
		t.Fatalf("reply = %v, want ErrBadPayload", remote)
	}
}

func TestWorkerKilledDuringCall(t *testing.T) {
	ctx := testCtx(t)
	m := newMaster(t)
	s := spawn(t, m)
	sleeping := master.Schedule(ctx, s, Sleep, time.Hour)
	queued := master.Schedule(ctx, s, Sum, []int{1})
	concurrent := master.Thread(ctx, s, Sleep, time.Hour)
	// Killed once it holds all three: the two sleeps and the sum behind.
	waitPending(t, m.Conn(), s.ID(), Sleep.Name(), 2)
	waitPending(t, m.Conn(), s.ID(), Sum.Name(), 1)
	if err := syscall.Kill(s.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, wait := range []func() error{
		func() error { _, err := sleeping.Wait(ctx); return err },
		func() error { _, err := queued.Wait(ctx); return err },
		func() error { _, err := concurrent.Wait(ctx); return err },
	} {
		err := wait()
		if !errors.Is(err, bus.ErrWorkerLost) || !strings.Contains(err.Error(), "killed") || !strings.Contains(err.Error(), s.ID()) {
			t.Fatalf("err = %v, want ErrWorkerLost naming the worker and the signal", err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("pending calls failed after %s", d)
	}
	if _, err := master.Invoke(ctx, s, Sum, []int{1}); !errors.Is(err, bus.ErrWorkerLost) {
		t.Fatalf("call after death: %v, want ErrWorkerLost", err)
	}
}

func TestForgetfulWorker(t *testing.T) {
	m := newMaster(t)
	for _, tc := range []struct {
		mode    string
		timeout time.Duration
		texts   []string
	}{
		{"exit", 20 * time.Second, []string{"exited", "exit status 1", "worker.Main()", "doing my own thing"}},
		{"hang", 2 * time.Second, []string{"no hello within 2s", "worker.Main()"}},
		{"spawn", 20 * time.Second, []string{"exit status 3", "worker.Main()", "refusing to spawn"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			var out bytes.Buffer
			_, err := m.Spawn(testCtx(t), master.WithBinary(binForgetful, tc.mode),
				master.WithStartTimeout(tc.timeout), master.WithOutput(&out, &out))
			if !errors.Is(err, master.ErrNoHello) {
				t.Fatalf("err = %v, want ErrNoHello", err)
			}
			for _, text := range tc.texts {
				if !strings.Contains(err.Error(), text) {
					t.Errorf("err = %q, want it to say %q", err, text)
				}
			}
		})
	}
	// The processes are gone: TestMain checks that no binary of ours
	// outlives the tests, and here that none did by now.
	if left := proctest.Under(binForgetful); len(left) > 0 {
		t.Fatalf("forgetful processes left: %v", left)
	}
}

func TestProtocolMismatch(t *testing.T) {
	m := newMaster(t)
	_, err := m.Spawn(testCtx(t), master.WithBinary(binMismatch), master.WithOutput(nil, nil))
	if !errors.Is(err, bus.ErrProtocolVersion) {
		t.Fatalf("err = %v, want ErrProtocolVersion", err)
	}
	if !strings.Contains(err.Error(), "99") || !strings.Contains(err.Error(), strconv.Itoa(wire.ProtocolVersion)) {
		t.Fatalf("err = %q, want both versions named", err)
	}
	if left := proctest.Under(binMismatch); len(left) > 0 {
		t.Fatalf("processes left: %v", left)
	}
}

func TestCloseLeavesNoProcess(t *testing.T) {
	ctx := testCtx(t)
	m := newMaster(t)
	s := spawn(t, m)
	queued := master.Schedule(ctx, s, Sum, []int{5})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := queued.Wait(ctx); n != 5 || err != nil {
		t.Fatalf("call queued before Close: %d, %v", n, err)
	}
	if !proctest.Gone(s.PID(), time.Second) {
		t.Fatalf("worker %d still runs after Close", s.PID())
	}
}

// TestMasterKilledTakesWorkerAlong kills a master process with SIGKILL
// while its worker runs a long call and has a child of its own, 100 times:
// neither the worker nor its child may survive.
func TestMasterKilledTakesWorkerAlong(t *testing.T) {
	rounds := 100
	if testing.Short() {
		rounds = 5
	}
	deadline := time.Now().Add(2 * time.Minute)
	var slowest time.Duration
	for i := 0; i < rounds && time.Now().Before(deadline); i++ {
		d := killHolder(t)
		slowest = max(slowest, d)
	}
	t.Logf("slowest orphan exit of %d: %s", rounds, slowest)
}

// killHolder runs one holder, kills it, and returns how long its worker
// and the worker's child took to be gone.
func killHolder(t *testing.T) time.Duration {
	t.Helper()
	cmd := exec.Command(binHolder)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		pids     []int
		segments []string
	)
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL) // even when the test failed
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("holder printed no pids: %v", err)
	}
	fields := strings.Fields(line)
	if len(fields) != 4 {
		t.Fatalf("holder printed %q, want two pids and two segments", line)
	}
	for _, f := range fields[:2] {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("holder printed %q", line)
		}
		pids = append(pids, pid)
	}
	segments = fields[2:]
	for _, seg := range segments {
		if _, err := os.Stat(filepath.Join(shm.Dir, seg)); err != nil {
			t.Fatalf("segment in flight: %v", err)
		}
	}
	if len(pids) != 2 || proctest.Gone(pids[0], 0) || proctest.Gone(pids[1], 0) {
		t.Fatalf("worker and grandchild %v not running before the kill", pids)
	}
	// Only the master: the worker has a process group of its own.
	start := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// The parent-death signal is immediate; the worker's reconnect attempts
	// alone would take two seconds, and its child would never go.
	for _, pid := range pids {
		if !proctest.Gone(pid, time.Second) {
			t.Fatalf("process %d (of worker and grandchild %v) outlived its master by a second", pid, pids)
		}
	}
	took := time.Since(start)
	// Both holders of the segments died by SIGKILL: the next sweep on the
	// host (a master's start does one) removes them.
	cmd.Wait()
	if _, err := shm.Sweep(); err != nil {
		t.Fatal(err)
	}
	for _, seg := range segments {
		if _, err := os.Stat(filepath.Join(shm.Dir, seg)); err == nil {
			t.Fatalf("segment %s survived its killed holders and a sweep", seg)
		}
	}
	return took
}

// TestWorkerKilledLoop kills a worker with calls of every kind pending on
// it, 100 times: every call fails with ErrWorkerLost, none hangs.
func TestWorkerKilledLoop(t *testing.T) {
	rounds := 100
	if testing.Short() {
		rounds = 5
	}
	ctx := testCtx(t)
	m := newMaster(t)
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; i < rounds && time.Now().Before(deadline); i++ {
		s, err := m.Spawn(ctx, master.WithBinary(binProcessional))
		if err != nil {
			t.Fatal(err)
		}
		// Shared memory in flight both ways: ours, held by a running
		// call; the worker's, held here.
		mine, err := shm.New(4096)
		if err != nil {
			t.Fatal(err)
		}
		held := master.Thread(ctx, s, builtin.HoldShm, mine)
		theirs, err := master.Invoke(ctx, s, builtin.NewShm, 4096)
		if err != nil {
			t.Fatal(err)
		}
		segments := []string{segName(mine), segName(theirs)}
		running := master.Schedule(ctx, s, Sleep, time.Hour)
		queued := master.Schedule(ctx, s, Sum, []int{1})
		concurrent := master.Thread(ctx, s, Sleep, time.Hour)
		invoked := make(chan error, 1)
		go func() { _, err := master.Invoke(ctx, s, Sum, []int{2}); invoked <- err }()
		if i%2 == 0 { // now and then, kill it mid-start of the calls
			master.Thread(ctx, s, Getpid, struct{}{}).Wait(ctx)
		}
		syscall.Kill(s.PID(), syscall.SIGKILL)
		bounded, cancel := context.WithTimeout(ctx, 10*time.Second)
		errs := []error{
			waitErr(bounded, running), waitErr(bounded, queued), waitErr(bounded, concurrent),
			func() error {
				select {
				case err := <-invoked:
					return err
				case <-bounded.Done():
					return bounded.Err()
				}
			}(),
		}
		cancel()
		for j, err := range append(errs, waitErr(ctx, held)) {
			if !errors.Is(err, bus.ErrWorkerLost) {
				t.Fatalf("round %d, call %d: %v, want ErrWorkerLost", i, j, err)
			}
		}
		s.Close()
		// The worker died holding both: once we let go of ours, nothing
		// holds them.
		mine.Close()
		theirs.Close()
		for _, seg := range segments {
			if _, err := os.Stat(filepath.Join(shm.Dir, seg)); err == nil {
				t.Fatalf("round %d: segment %s survived its killed holder and our Close", i, seg)
			}
		}
	}
}

func segName(b *shm.Buffer) string {
	name, _, _, _ := b.Ref()
	return name
}

func waitErr[T any](ctx context.Context, task *master.Task[T]) error {
	_, err := task.Wait(ctx)
	return err
}
