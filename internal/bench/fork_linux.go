//go:build linux

package bench

import "syscall"

// killOnParentDeath gives attr SIGKILL as the parent-death signal.
func killOnParentDeath(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }
