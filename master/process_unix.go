//go:build unix

package master

import "syscall"

// procSys is what a worker process takes beyond exec.Cmd on a Unix: its
// process group, named by its pid, is all.
type procSys struct{}

// started readies the worker process pid, just started, for killGroup.
func (p *process) started(int) error { return nil }

// killGroup kills process group pid, the worker's and its children's.
func (p *process) killGroup(pid int) { syscall.Kill(-pid, syscall.SIGKILL) }

// outlive makes the worker's process group outlive the master: on a
// Unix, nothing kills it with the master but the worker itself, which
// was told.
func (p *process) outlive() {}

// release lets go of what started took, once the worker's group is
// killed or outlives us.
func (p *process) release() {}
