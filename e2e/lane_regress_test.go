//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

// laneSendBuffer is the send buffer a new Unix socket gets on this host:
// what the master's end of a lane holds before its writes wait.
func laneSendBuffer(t *testing.T) int {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	n, err := unix.GetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLaneStoppedWorkerKeepsHeartbeats stops a worker (SIGSTOP) whose
// lane the master's calls then fill, and checks that the master still
// declares it lost, failing its calls (about a lease; asserted within
// hangBound, as the fault was that it never did), and that its
// other worker keeps its lease and serves. Two calls of half the
// socket's send buffer fill it without a call waiting: the next write on
// the lane is the heartbeat's.
//
// It failed when lane.Conn.Write could wait for the socket: the master's
// one heartbeat goroutine (Master.heartbeats) blocked in that write, so
// the stopped worker was never declared lost and every other worker,
// hearing no heartbeat, let its lease lapse and exited. Writes no longer
// wait: what the socket does not take goes by a flusher.
func TestLaneStoppedWorkerKeepsHeartbeats(t *testing.T) {
	laneOn(t)
	ctx := testCtx(t)
	// A child lease of 1 s, not the default 5 s: the stopped worker is
	// lost within hangBound with room to spare on a loaded machine.
	m, err := master.New(ctx, master.WithChildLease(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	stopped := spawn(t, m)
	other := spawn(t, m)
	if err := syscall.Kill(stopped.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(stopped.PID(), syscall.SIGCONT) }) // before the spawns' cleanups
	waitStopped(t, stopped.PID())                                      // the signal is on its way when kill returns
	half := bytes.Repeat([]byte("x"), laneSendBuffer(t)/2-2<<10)
	var tasks []*master.Task[[]byte]
	for range 2 {
		sent := make(chan *master.Task[[]byte], 1)
		go func() { sent <- master.Schedule(ctx, stopped, builtin.Echo, half) }()
		select {
		case task := <-sent:
			tasks = append(tasks, task)
		case <-time.After(hangBound):
			t.Fatalf("a call on the stopped worker waited %s to be written", hangBound)
		}
	}
	start := time.Now()
	bounded, cancel := context.WithTimeout(ctx, hangBound)
	defer cancel()
	for i, task := range tasks {
		if err := waitErr(bounded, task); !errors.Is(err, bus.ErrWorkerLost) {
			t.Errorf("call %d on the stopped worker, %s after its lane filled: %v, want ErrWorkerLost", i, time.Since(start).Round(time.Millisecond), err)
		}
	}
	select {
	case <-other.Exited():
		t.Errorf("the other worker exited, %s after the first one's lane filled: it heard no heartbeat", time.Since(start).Round(time.Millisecond))
	default:
		bounded, cancel := context.WithTimeout(ctx, hangBound)
		defer cancel()
		if n, err := master.Invoke(bounded, other, Sum, []int{1}); n != 1 || err != nil {
			t.Errorf("the other worker, %s after the first one's lane filled: %d, %v", time.Since(start).Round(time.Millisecond), n, err)
		}
	}
}

// waitStopped waits, hangBound at most, until process pid is stopped.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(hangBound)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err == nil && strings.Contains(string(stat), ") T ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not stopped %s after SIGSTOP: %s (%v)", pid, hangBound, stat, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLaneKilledWorkerNamedByExitStatus kills a worker with SIGKILL
// while a call runs on it, and sends it another call the moment it is
// dead, whose write on the lane races the master's reading of the lane's
// end, 60 times: the running call must fail with ErrWorkerLost and the worker's
// exit status (killed), as when nothing is written meanwhile, not as a
// worker that broke its lane.
//
// It failed in about one trial in ten when the write's failure (EPIPE)
// closed the socket under the master's reader, which then got "use of
// closed network connection" rather than EOF and took the death for a
// broken lane. The reader now returns the write's error, which
// lane.Ended takes for the lane's end.
func TestLaneKilledWorkerNamedByExitStatus(t *testing.T) {
	laneOn(t)
	ctx := testCtx(t)
	m := newMaster(t)
	var mu sync.Mutex
	how := map[string]int{}
	_, err := runTrials(t, 60, 2, time.Minute, func(int) (time.Duration, error) {
		s, err := m.Spawn(ctx, master.WithBinary(binProcessional))
		if err != nil {
			return 0, err
		}
		defer s.Close()
		running := master.Schedule(ctx, s, Sleep, time.Hour)
		if _, err := master.Thread(ctx, s, Getpid, struct{}{}).Wait(ctx); err != nil { // the sleep runs
			return 0, err
		}
		clock, err := watchExits(s.PID())
		if err != nil {
			return 0, err
		}
		defer clock.finish()
		if err := syscall.Kill(s.PID(), syscall.SIGKILL); err != nil {
			return 0, err
		}
		// Dead, its lane's end closed: the call races the master's
		// reader to the news.
		if _, _, ok := clock.wait(time.Now(), hangBound); !ok {
			return 0, fmt.Errorf("worker %d runs %s after its SIGKILL", s.PID(), hangBound)
		}
		after := master.Schedule(ctx, s, Sum, []int{1})
		bounded, cancel := context.WithTimeout(ctx, hangBound)
		defer cancel()
		err = waitErr(bounded, running)
		errAfter := waitErr(bounded, after)
		if !errors.Is(err, bus.ErrWorkerLost) || !errors.Is(errAfter, bus.ErrWorkerLost) {
			return 0, fmt.Errorf("the running call: %v; the call after the kill: %v; want ErrWorkerLost", err, errAfter)
		}
		said := deathSaid(err)
		mu.Lock()
		how[said]++
		mu.Unlock()
		if !strings.Contains(err.Error(), "signal: killed") {
			t.Errorf("the running call: %v, want the worker's exit status (killed)", err)
		}
		return 0, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the running call's error said: %v", how)
}
