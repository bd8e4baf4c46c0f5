package master_test

import (
	"context"
	"errors"
	"testing"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

func TestDefaultMaster(t *testing.T) {
	ctx := context.Background()
	a, err := master.Spawn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := master.Spawn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Both share the default master; it stops with the last slave
	// (goleak checks), and the next Spawn starts a new one.
	if a.Master() != b.Master() {
		t.Fatal("two package-level spawns got different masters")
	}
	first := a.Master()
	for _, s := range []*master.Slave{a, b} {
		if n, err := master.Invoke(ctx, s, Sum, []int{1, 1}); n != 2 || err != nil {
			t.Fatalf("%v: %d, %v", s, n, err)
		}
	}
	a.Close()
	if n, err := master.Invoke(ctx, b, Sum, []int{2, 2}); n != 4 || err != nil {
		t.Fatalf("after the first slave closed: %d, %v", n, err)
	}
	b.Close()
	c, err := master.Spawn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Master() == first {
		t.Fatal("the default master outlived its last slave")
	}
	if _, err := first.Spawn(ctx); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("the old default master still spawns: %v", err)
	}

	// Closed by hand, through Slave.Master, it closes every slave on it,
	// and the next Spawn starts a new one.
	d, err := master.Spawn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second := d.Master()
	if second != c.Master() {
		t.Fatal("two package-level spawns got different masters")
	}
	second.Close()
	for _, s := range []*master.Slave{c, d} {
		select {
		case <-s.Exited():
		default:
			t.Fatalf("%v outlived its default master's Close", s)
		}
		if _, err := master.Invoke(ctx, s, Sum, []int{1}); !errors.Is(err, bus.ErrClosed) {
			t.Fatalf("%v after its default master's Close: %v, want ErrClosed", s, err)
		}
	}
	e, err := master.Spawn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Master() == second {
		t.Fatal("Spawn used a default master closed by hand")
	}
}
