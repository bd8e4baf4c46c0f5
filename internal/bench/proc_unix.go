//go:build unix

package bench

import "syscall"

// killPID kills process pid with SIGKILL.
func killPID(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// killGroup kills process group pid with SIGKILL.
func killGroup(pid int) error { return syscall.Kill(-pid, syscall.SIGKILL) }
