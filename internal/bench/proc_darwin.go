//go:build darwin

package bench

import "syscall"

// ownGroup starts a child in a process group of its own (macOS has no
// parent-death signal: the bench's children go with its Close).
func ownGroup(attr *syscall.SysProcAttr) { attr.Setpgid = true }
