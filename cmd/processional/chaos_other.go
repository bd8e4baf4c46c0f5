//go:build !linux

package main

import (
	"fmt"
	"os"
	"runtime"
)

// chaosCmd says that the chaos soak runs on Linux alone: it reads /proc,
// makes network namespaces and stops processes with signals.
func chaosCmd([]string) int {
	fmt.Fprintf(os.Stderr, "processional chaos: not on %s: the soak runs on Linux only (it reads /proc, makes network namespaces and stops processes with signals)\n", runtime.GOOS)
	return 1
}
