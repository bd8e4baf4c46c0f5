//go:build unix

package worker

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/processional/processional/internal/wire"
)

// orphaned reports whether the master that spawned the worker is gone:
// the worker is no longer its child, and it is dead or dying. (A worker
// run by a wrapper script that did not exec is not the master's child
// either, but its master lives.) A wrapper must exec the worker binary:
// the parent-death signal reaches the master's direct child only.
func orphaned(cfg *wire.WorkerConfig) bool {
	if cfg.PID == 0 || os.Getppid() == cfg.PID {
		return false
	}
	if err := syscall.Kill(cfg.PID, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cfg.PID))
	return err == nil && strings.Contains(string(stat), ") Z ") // killed, not yet reaped
}

// killGroup kills the worker's process group, the worker with it, when the
// worker leads it (as a spawned worker does); otherwise it exits.
func killGroup() {
	if syscall.Getpgrp() == os.Getpid() {
		syscall.Kill(0, syscall.SIGKILL)
	}
	os.Exit(1)
}
