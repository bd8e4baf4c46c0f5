//go:build darwin

package shm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// What macOS lacks of Linux, or names otherwise. Segments are files of a
// private directory in the user's temporary directory ($TMPDIR, the same
// for every process of the user), mapped as on Linux, with the same
// holders, transits and sweep. macOS has no /dev/shm, no O_TMPFILE and no
// fallocate: a segment is named as it is made (one left incomplete by a
// killed creator is swept once a minute old) and sized with ftruncate.

// defaultDir is where segments live unless $PROCESSIONAL_SHM_DIR says:
// made, private to the user, on first use.
func defaultDir() string {
	dir := filepath.Join(os.TempDir(), "processional-shm")
	os.Mkdir(dir, 0o700)
	return dir
}

// mapPopulate: macOS maps lazily only.
const mapPopulate = 0

// openTmpfile: macOS has no unnamed files; create names the segment
// first.
func openTmpfile(string) (int, error) { return -1, unix.EOPNOTSUPP }

// fallocate: macOS has none (F_PREALLOCATE does not extend the file);
// mapNew sizes the file with ftruncate instead.
func fallocate(int, int64) error { return unix.ENOTSUP }

// startTime returns the start time of process pid, in microseconds since
// the epoch, or 0 if there is no such process (or a zombie): with the
// pid, it names a process even once its pid is reused.
func startTime(pid int) uint64 {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || kp.Proc.P_pid != int32(pid) || kp.Proc.P_stat == 5 { // SZOMB
		return 0
	}
	t := kp.Proc.P_starttime
	return uint64(t.Sec)*1e6 + uint64(t.Usec)
}

var domain = sync.OnceValue(func() string {
	if d := os.Getenv("PROCESSIONAL_SHM_DOMAIN"); d != "" {
		return d
	}
	boot, err := unix.Sysctl("kern.bootsessionuuid")
	var st unix.Stat_t
	if err != nil || unix.Stat(Dir, &st) != nil {
		return "" // share with no one
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%d", boot, st.Dev, st.Ino)))
	return hex.EncodeToString(h[:8])
})
