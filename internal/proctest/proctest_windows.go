//go:build windows

package proctest

import "golang.org/x/sys/windows"

// running reports whether process pid runs.
func running(pid int) bool {
	h, err := windows.OpenProcess(windows.SYNCHRONIZE, false, uint32(pid))
	if err != nil {
		return false
	}
	defer windows.CloseHandle(h)
	ev, err := windows.WaitForSingleObject(h, 0)
	return err == nil && ev == uint32(windows.WAIT_TIMEOUT)
}

// Under lists the live processes whose executable is under dir: on
// Windows, none is found (the tests that start processes run on Linux).
func Under(dir string) []int { return nil }
