//go:build unix

package master_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/processional/processional/master"
)

// A member that does not answer a refresh, but whose lease holds (here:
// stopped for a moment; in the chaos soak, its NATS server down while its
// calls went on its lane), stays in the pool.
func TestPoolRefreshKeepsLiveMembers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := newMaster(t) // the child lease, 5 s: longer than the refresh
	var members []*master.Slave
	for range 2 {
		s, err := m.Spawn(ctx, master.InPool("refresh"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Terminate() })
		members = append(members, s)
	}
	p, err := m.Pool(ctx, "refresh")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.Members()); got != 2 {
		t.Fatalf("%d members, want 2", got)
	}
	stopped := members[0]
	if err := syscall.Kill(stopped.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	err = p.Refresh(ctx)
	syscall.Kill(stopped.PID(), syscall.SIGCONT)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.Members()); got != 2 {
		t.Fatalf("after a refresh the stopped member could not answer: %d members, want 2", got)
	}
	if n, err := master.Invoke(ctx, stopped, Square, 3); n != 9 || err != nil {
		t.Fatalf("the member stopped during the refresh, running again: %d, %v", n, err)
	}
}
