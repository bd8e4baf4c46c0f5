package master_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

type Notes struct {
	mu    sync.Mutex
	Lines []string
}

func (n *Notes) Write(line string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.Lines = append(n.Lines, line)
	return len(n.Lines)
}

var WriteNote = bus.Register("test.writeNote", func(ctx context.Context, r *master.Ref) (int, error) {
	return master.Method[int](ctx, r, "Write", fmt.Sprint("from worker ", os.Getpid())).Wait(ctx)
})

func TestExport(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	ctx := context.Background()
	notes := &Notes{}
	r, err := m.Export(ctx, notes)
	if err != nil {
		t.Fatal(err)
	}
	if obj, ok := r.Local(); !ok || obj != notes {
		t.Errorf("Local() = %v, %v", obj, ok)
	}
	if n, err := master.Invoke(ctx, s, WriteNote, r); err != nil || n != 1 {
		t.Fatalf("writeNote = %d, %v", n, err)
	}
	notes.mu.Lock()
	got := append([]string(nil), notes.Lines...)
	notes.mu.Unlock()
	if len(got) != 1 || got[0] != fmt.Sprint("from worker ", s.PID()) {
		t.Fatalf("notes = %q", got)
	}
	r.Close()
	s.Close()
	waitEmpty(t, m, m.ID()+"-exports")
}
