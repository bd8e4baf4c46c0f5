//go:build windows

package worker

import (
	"os"

	"golang.org/x/sys/windows"

	"github.com/processional/processional/internal/wire"
)

// orphaned reports whether the master that spawned the worker is gone.
func orphaned(cfg *wire.WorkerConfig) bool {
	if cfg.PID == 0 || os.Getppid() == cfg.PID {
		return false
	}
	h, err := windows.OpenProcess(windows.SYNCHRONIZE, false, uint32(cfg.PID))
	if err != nil {
		return true
	}
	defer windows.CloseHandle(h)
	ev, err := windows.WaitForSingleObject(h, 0)
	return err == nil && ev == windows.WAIT_OBJECT_0
}

// killGroup exits. On Windows the master holds the worker's Job Object,
// which the worker's children join: when the master dies, Windows kills
// them all as it closes the master's handle, whichever of the worker's
// ways (its lane's end, its lease) tells it first.
func killGroup() { os.Exit(1) }
