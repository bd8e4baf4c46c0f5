package master_test

import (
	"context"
	"errors"
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
	if err := (&master.Slave{}).Close(); !errors.Is(err, master.ErrBadCall) {
		t.Fatalf("Close of a zero Slave: %v", err)
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
