//go:build linux

package shm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// What Linux has that other systems lack, or name otherwise.

// defaultDir is where segments live unless $PROCESSIONAL_SHM_DIR says.
func defaultDir() string { return "/dev/shm" }

// mapPopulate maps a segment's pages at once: their first touch is
// costly on a virtual machine, and cheaper in one call.
const mapPopulate = unix.MAP_POPULATE

// openTmpfile opens an unnamed file in dir (O_TMPFILE), to be linked once
// whole.
func openTmpfile(dir string) (int, error) {
	return unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
}

// fallocate gives fd size bytes of storage, so that a full /dev/shm
// fails here (ENOSPC) rather than as a SIGBUS at a write into the mapping.
func fallocate(fd int, size int64) error { return unix.Fallocate(fd, 0, 0, size) }

// startTime returns the start time of process pid, in clock ticks since
// boot, or 0 if there is no such process: with the pid, it names a process
// even once its pid is reused.
func startTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis. starttime is field 22.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
		return 0 // a zombie holds nothing any more
	}
	v, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

var domain = sync.OnceValue(func() string {
	if d := os.Getenv("PROCESSIONAL_SHM_DOMAIN"); d != "" {
		return d
	}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	var st unix.Stat_t
	if unix.Stat(Dir, &st) != nil {
		return "" // no /dev/shm: share with no one
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%d", strings.TrimSpace(string(boot)), st.Dev, st.Ino)))
	return hex.EncodeToString(h[:8])
})
