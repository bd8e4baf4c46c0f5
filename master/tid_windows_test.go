package master_test

import "golang.org/x/sys/windows"

// threadID is the calling OS thread's id.
func threadID() int { return int(windows.GetCurrentThreadId()) }
