package master_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

func TestBadExecutors(t *testing.T) {
	var nilSlave *master.Slave
	closed := master.NewThread()
	closed.Close()
	for _, tc := range []struct {
		name string
		ex   master.Executor
		kind func(master.Executor) error
		want error
	}{
		{"nil slave", nilSlave, invokeOn, master.ErrBadCall},
		{"zero slave", &master.Slave{}, invokeOn, master.ErrBadCall},
		{"zero slave thread", &master.SlaveThread{}, invokeOn, master.ErrBadCall},
		{"nil slave thread", (*master.SlaveThread)(nil), invokeOn, master.ErrBadCall},
		{"closed slave thread", closed, invokeOn, bus.ErrClosed},
		{"Thread on a closed slave thread", closed, threadOn, bus.ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.kind(tc.ex); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if err := (&master.SlaveThread{}).Close(); err != nil {
		t.Fatalf("Close of a zero SlaveThread: %v", err)
	}
}

func invokeOn(ex master.Executor) error {
	_, err := master.Invoke(context.Background(), ex, Sum, []int{1})
	return err
}

func threadOn(ex master.Executor) error {
	_, err := master.Thread(context.Background(), ex, Sum, []int{1}).Wait(context.Background())
	return err
}

// TestNilSlave: every method of a nil or zero Slave says so with
// ErrBadCall, or returns its zero value, instead of panicking.
func TestNilSlave(t *testing.T) {
	ctx := context.Background()
	for name, s := range map[string]*master.Slave{"nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				verb string
				call func() error
			}{
				{"Close", s.Close},
				{"Terminate", s.Terminate},
				{"Detach", func() error { return s.Detach(ctx) }},
				{"Persist", func() error { return s.Persist(ctx) }},
				{"StopServer", func() error { return s.StopServer(ctx) }},
				{"Invoke on Idempotent", func() error { return invokeOn(s.Idempotent()) }},
			} {
				if err := tc.call(); !errors.Is(err, master.ErrBadCall) || !strings.Contains(err.Error(), "nil or zero") {
					t.Errorf("%s: %v, want ErrBadCall saying the Slave is nil or zero", tc.verb, err)
				}
			}
			if id, m, pid, str := s.ID(), s.Master(), s.PID(), s.String(); id != "" || m != nil || pid != 0 || str != "nil Slave" {
				t.Errorf("ID, Master, PID, String = %q, %v, %d, %q; want zero values and \"nil Slave\"", id, m, pid, str)
			}
			select {
			case <-s.Exited():
			default:
				t.Error("Exited is open: a Slave with no worker has nothing to wait for")
			}
		})
	}
}
