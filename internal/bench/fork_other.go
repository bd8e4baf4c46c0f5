//go:build !linux

package bench

import "syscall"

// killOnParentDeath: only Linux has a parent-death signal; elsewhere the
// bench's children go with the bench's Close, or its process group.
func killOnParentDeath(*syscall.SysProcAttr) {}
