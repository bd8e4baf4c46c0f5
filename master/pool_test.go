package master_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

var Getpid = bus.Register("test.getpid", func(ctx context.Context, _ struct{}) (int, error) { return os.Getpid(), nil })

var Square = bus.Register("test.square", func(ctx context.Context, x int) (int, error) {
	if x < 0 {
		return 0, fmt.Errorf("item %d: %w", x, ErrNegative)
	}
	return x * x, nil
})

func TestPoolMap(t *testing.T) {
	m := newMaster(t)
	ctx := context.Background()
	if _, err := m.Pool(ctx, "empty"); !errors.Is(err, master.ErrNoMembers) {
		t.Fatalf("a pool with no members: %v", err)
	}
	var members []*master.Slave
	for range 2 {
		s, err := m.Spawn(ctx, master.InPool("squares"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Terminate() })
		members = append(members, s)
	}
	p, err := m.Pool(ctx, "squares")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.Members()); got != 2 {
		t.Fatalf("%d members, want 2", got)
	}
	items := make([]int, 1000)
	for i := range items {
		items[i] = i
	}
	items[7] = -1
	res, errs := master.Map(ctx, p, Square, items, master.InFlight(64))
	for i := range items {
		switch {
		case i == 7:
			if !errors.Is(errs[i], ErrNegative) {
				t.Fatalf("item 7: %v, want its own error", errs[i])
			}
		case errs[i] != nil || res[i] != i*i:
			t.Fatalf("item %d: %d, %v", i, res[i], errs[i])
		}
	}
	// Both members took a share: each answers getpid-like calls.
	pids := map[int]bool{}
	for range 20 {
		pid, err := master.Invoke(ctx, p, Getpid, struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		pids[pid] = true
	}
	if len(pids) != 2 {
		t.Fatalf("20 calls went to %d members, want both in turn", len(pids))
	}
	// A member dies in the middle of a Map: marked idempotent, its items go
	// to the other member.
	slow := make([]time.Duration, 40)
	for i := range slow {
		slow[i] = 20 * time.Millisecond
	}
	kill := time.AfterFunc(100*time.Millisecond, func() { members[0].Terminate() })
	defer kill.Stop()
	_, errs2 := master.Map(ctx, p, Sleep, slow, master.InFlight(8), master.Idempotent())
	for i, err := range errs2 {
		if err != nil {
			t.Fatalf("item %d after a member died, idempotent: %v", i, err)
		}
	}
	if got := len(p.Members()); got != 1 {
		t.Fatalf("%d live members after one died, want 1", got)
	}
}
