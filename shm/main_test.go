//go:build unix

package shm

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/processional/processional/internal/proctest"
)

// The test binary runs itself as a child process for the tests that cross
// processes: with childEnv set, TestMain serves the commands the parent
// writes on its standard input (see runChild) instead of running tests.
const childEnv = "SHM_TEST_CHILD"

// timeout bounds every wait for a child, so that a bug fails instead of
// hanging.
const timeout = 10 * time.Second

var (
	// initial is the processional entries of /dev/shm when the tests
	// started; initialOrphans, those of them a Sweep would remove. Tests
	// never touch them: when there are such orphans, sweepAll sweeps only
	// the segments that appeared since.
	initial        map[string]bool
	initialOrphans []string
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		runChild()
		os.Exit(0)
	}
	proctest.NoRaceExitSleep()
	initial = listSegments()
	for name := range initial {
		if wouldSweep(name) {
			initialOrphans = append(initialOrphans, name)
		}
	}
	goleak.VerifyTestMain(m)
}

// ---- /dev/shm bookkeeping ----

// listSegments lists the entries of /dev/shm whose name starts with Prefix.
func listSegments() map[string]bool {
	entries, err := os.ReadDir(Dir)
	if err != nil {
		panic(err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), Prefix) {
			out[e.Name()] = true
		}
	}
	return out
}

func exists(name string) bool {
	_, err := os.Lstat(Dir + "/" + name)
	return err == nil
}

// readHeader reads the header of segment name, without mapping or holding
// it; ok is false for anything but a regular file as long as a header.
func readHeader(name string) (hdr []byte, ok bool) {
	fi, err := os.Lstat(Dir + "/" + name)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() < headerSize {
		return nil, false
	}
	f, err := os.Open(Dir + "/" + name)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	hdr = make([]byte, headerSize)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return nil, false
	}
	return hdr, true
}

type slotInfo struct {
	i     int
	pid   int32
	start uint64
	nonce uint64
}

// slotsOf decodes the used slots of a header.
func slotsOf(hdr []byte) []slotInfo {
	var out []slotInfo
	for i := range numSlots {
		p := hdr[slotsOff+i*slotSize:]
		s := slotInfo{i, int32(binary.LittleEndian.Uint32(p)), binary.LittleEndian.Uint64(p[8:]), binary.LittleEndian.Uint64(p[16:])}
		if s.pid != 0 { // a free slot may keep the start and nonce of its last holder
			out = append(out, s)
		}
	}
	return out
}

// headerSlots returns the used slots of segment name.
func headerSlots(t *testing.T, name string) []slotInfo {
	t.Helper()
	hdr, ok := readHeader(name)
	if !ok {
		t.Fatalf("%s: no header to read", name)
	}
	return slotsOf(hdr)
}

// slotsFor returns the used slots of segment name with that pid.
func slotsFor(t *testing.T, name string, pid int) []slotInfo {
	t.Helper()
	var out []slotInfo
	for _, s := range headerSlots(t, name) {
		if int(s.pid) == pid {
			out = append(out, s)
		}
	}
	return out
}

// wouldSweep reports whether Sweep, run by another process of this user,
// would remove entry name.
func wouldSweep(name string) bool {
	if !validName(name) {
		return false
	}
	fi, err := os.Lstat(Dir + "/" + name)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != uint32(os.Getuid()) {
		return false
	}
	old := time.Since(fi.ModTime()) >= time.Minute
	hdr, ok := readHeader(name)
	if !ok || binary.LittleEndian.Uint64(hdr) != magic {
		return old
	}
	for _, s := range slotsOf(hdr) {
		if liveNow(int(s.pid), s.start) {
			return false
		}
	}
	return true
}

// liveNow is alive, read from /proc now: the package may remember a
// process's start time for a moment.
func liveNow(pid int, start uint64) bool {
	return pid == -1 || pid > 0 && startTime(pid) == start
}

// foreign reports whether entry name belongs to someone else than the tests
// of this process: not a complete segment (another test binary creating
// one right now), or held only by processes other than this one and the
// children it started (another package's, live or killed: the e2e kill
// loops leave segments that their sweeps remove later). A complete
// segment that no process holds is ours: a release that did not unlink.
func foreign(name string) bool {
	hdr, ok := readHeader(name)
	if !ok || binary.LittleEndian.Uint64(hdr) != magic {
		return true
	}
	held := false
	for _, s := range slotsOf(hdr) {
		if s.pid == 0 {
			continue
		}
		held = true
		if int(s.pid) == os.Getpid() || isChild(int(s.pid), s.start) {
			return false
		}
	}
	return held
}

// children are the processes startChild started, by pid, with their
// start times.
var children sync.Map

// isChild reports whether process pid, started at start, is one of
// startChild's.
func isChild(pid int, start uint64) bool {
	v, ok := children.Load(pid)
	return ok && v.(uint64) == start
}

// watch snapshots /dev/shm and checks, when the test ends (after the
// cleanups registered later, which stop its children), that no new
// processional entry remains. Entries that appeared meanwhile but belong to
// other processes (the tests of other packages may run at the same time)
// are left out. A leaked segment is reported, then removed.
func watch(t *testing.T) {
	t.Helper()
	before := listSegments()
	t.Cleanup(func() {
		var leaked []string
		for name := range listSegments() {
			if before[name] {
				continue
			}
			if foreign(name) {
				t.Logf("ignoring %s: not this test's", name)
				continue
			}
			leaked = append(leaked, name)
		}
		sort.Strings(leaked)
		for _, name := range leaked {
			t.Errorf("segment %s left in %s (holders %+v)", name, Dir, headerSlots(t, name))
			os.Remove(Dir + "/" + name)
		}
	})
}

// sweepAll runs Sweep, or, if /dev/shm held orphan segments before the
// tests started (which the tests must not touch), sweeps only the segments
// that appeared since.
func sweepAll(t *testing.T) int {
	t.Helper()
	if len(initialOrphans) == 0 {
		n, err := Sweep()
		if err != nil {
			t.Fatalf("Sweep: %v", err)
		}
		return n
	}
	t.Logf("pre-existing orphans %v: sweeping new segments only", initialOrphans)
	n := 0
	for name := range listSegments() {
		if !initial[name] && validName(name) && sweepOne(name) {
			n++
		}
	}
	return n
}

// sweepOrphan checks that segment name, whose holders are all dead, is
// removed by a Sweep. The tests of other packages, running at the same
// time, may have swept it already.
func sweepOrphan(t *testing.T, name string) {
	t.Helper()
	if !exists(name) {
		t.Logf("%s already swept by another process", name)
		return
	}
	if !wouldSweep(name) {
		t.Fatalf("%s, whose holders are dead, is not sweepable: %+v", name, headerSlots(t, name))
	}
	n := sweepAll(t)
	if exists(name) {
		t.Fatalf("Sweep left %s (holders %+v)", name, headerSlots(t, name))
	}
	if n < 1 {
		t.Logf("Sweep removed %d: another process's Sweep removed %s meanwhile", n, name)
	}
}

func nameOf(t *testing.T, b *Buffer) string {
	t.Helper()
	name, _, _, ok := b.Ref()
	if !ok {
		t.Fatalf("Ref of %v: not ok", b)
	}
	return name
}

func mustNew(t *testing.T, n int) *Buffer {
	t.Helper()
	b, err := New(n)
	if err != nil {
		t.Fatalf("New(%d): %v", n, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func wantErr(t *testing.T, err, target error, words ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q lacks %q", err, w)
		}
	}
}

func wantExists(t *testing.T, name string, want bool) {
	t.Helper()
	if got := exists(name); got != want {
		t.Fatalf("%s exists: %v, want %v", name, got, want)
	}
}

// ---- crafted segments ----

type craft struct {
	dataSize uint64 // the header's data size
	fileSize int64  // the file's; headerSize+dataSize if 0, none if negative
	noMagic  bool
	slots    []slotInfo
	uid      int // owner, if not -1 (root only)
	age      time.Duration
}

func randName() string { return Prefix + randomName() }

// makeCrafted writes a segment file by hand, and removes it when the test
// ends if it is still there.
func makeCrafted(t *testing.T, c craft) string {
	t.Helper()
	return makeCraftedAt(t, randName(), c)
}

// makeCraftedAt is makeCrafted under a name of the caller's.
func makeCraftedAt(t *testing.T, name string, c craft) string {
	t.Helper()
	path := Dir + "/" + name
	size := c.fileSize
	switch {
	case size == 0:
		size = headerSize + int64(c.dataSize)
	case size < 0: // an empty file
		size = 0
	}
	b := make([]byte, size)
	if size >= 16 {
		if !c.noMagic {
			binary.LittleEndian.PutUint64(b, magic)
		}
		binary.LittleEndian.PutUint64(b[8:], c.dataSize)
	}
	for _, s := range c.slots {
		p := b[slotsOff+s.i*slotSize:]
		binary.LittleEndian.PutUint32(p, uint32(s.pid))
		binary.LittleEndian.PutUint64(p[8:], s.start)
		binary.LittleEndian.PutUint64(p[16:], s.nonce)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	if c.uid != 0 && c.uid != -1 {
		if err := os.Chown(path, c.uid, c.uid); err != nil {
			t.Fatal(err)
		}
	}
	if c.age != 0 {
		old := time.Now().Add(-c.age)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

// deadPID returns the pid of a process that ran and was reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// ---- child processes ----

// runChild serves the parent's commands, one a line, each answered with a
// line "ok ..." or "err <kind> <message>":
//
//	new N                 New(N): ok IDX NAME
//	open NAME OFF N NONCE Open: ok IDX
//	write IDX OFF HEX     writes the bytes at OFF of buffer IDX
//	read IDX              ok HEX (the bytes of buffer IDX)
//	close IDX             closes buffer IDX
//	transit IDX PID       ok NONCE
//	domain                ok DOMAIN
//	sweep                 ok N
//	release               ReleaseAll
//	exit                  exits, with no answer and no release
//
// It exits at the end of its input.
func runChild() {
	var bufs []*Buffer
	var transients []*Transient
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	reply := func(format string, a ...any) {
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
	}
	fail := func(err error) {
		kind := "other"
		for k, e := range map[string]error{"closed": ErrClosed, "nosegment": ErrNoSegment, "range": ErrRange, "full": ErrFull} {
			if errors.Is(err, e) {
				kind = k
			}
		}
		reply("err %s %s", kind, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "new":
			b, err := New(atoi(f[1]))
			if err != nil {
				fail(err)
				continue
			}
			bufs = append(bufs, b)
			name, _, _, _ := b.Ref()
			reply("ok %d %s", len(bufs)-1, name)
		case "sendtransient":
			t, name, nonce, err := SendTransient(make([]byte, atoi(f[1])), atoi(f[2]))
			if err != nil {
				fail(err)
				continue
			}
			transients = append(transients, t)
			reply("ok %d %s %d", len(transients)-1, name, nonce)
		case "sent":
			transients[atoi(f[1])].Close()
			reply("ok")
		case "open":
			nonce, _ := strconv.ParseUint(f[4], 10, 64)
			b, err := Open(f[1], atoi(f[2]), atoi(f[3]), nonce)
			if err != nil {
				fail(err)
				continue
			}
			bufs = append(bufs, b)
			reply("ok %d", len(bufs)-1)
		case "write":
			data, _ := hex.DecodeString(f[3])
			copy(bufs[atoi(f[1])].Bytes()[atoi(f[2]):], data)
			reply("ok")
		case "read":
			reply("ok %x", bufs[atoi(f[1])].Bytes())
		case "close":
			bufs[atoi(f[1])].Close()
			reply("ok")
		case "transit":
			nonce, err := bufs[atoi(f[1])].Transit(atoi(f[2]))
			if err != nil {
				fail(err)
				continue
			}
			reply("ok %d", nonce)
		case "domain":
			reply("ok %s", Domain())
		case "sweep":
			n, err := Sweep()
			if err != nil {
				fail(err)
				continue
			}
			reply("ok %d", n)
		case "release":
			ReleaseAll()
			reply("ok")
		case "exit":
			os.Exit(0)
		default:
			reply("err other unknown command %q", f[0])
		}
	}
}

type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     *os.File
	out    *os.File
	r      *bufio.Reader
	pid    int
	start  uint64
	waited bool
}

// startChild starts the test binary as a child serving commands; it is
// killed and reaped when the test ends, if it has not been already.
func startChild(t *testing.T, env ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PROCESSIONAL_SHM_DOMAIN=") && !strings.HasPrefix(kv, childEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, childEnv+"=1") // GORACE from TestMain: no sleep at exit
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	c := &child{t: t, cmd: cmd, in: inW, out: outR, r: bufio.NewReader(outR), pid: cmd.Process.Pid, start: startTime(cmd.Process.Pid)}
	children.Store(c.pid, c.start)
	t.Cleanup(func() {
		c.kill()
		c.in.Close()
		c.out.Close()
	})
	return c
}

// try sends a command and returns the fields of the answer after "ok", or
// the error line's kind and message.
func (c *child) try(format string, a ...any) (fields []string, kind, msg string) {
	c.t.Helper()
	line := fmt.Sprintf(format, a...)
	if _, err := fmt.Fprintln(c.in, line); err != nil {
		c.t.Fatalf("child %d: %s: %v", c.pid, line, err)
	}
	c.out.SetReadDeadline(time.Now().Add(timeout))
	ans, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("child %d: %s: no answer: %v", c.pid, line, err)
	}
	f := strings.Fields(ans)
	switch {
	case len(f) > 0 && f[0] == "ok":
		return f[1:], "", ""
	case len(f) > 1 && f[0] == "err":
		return nil, f[1], strings.Join(f[2:], " ")
	}
	c.t.Fatalf("child %d: %s: answer %q", c.pid, line, ans)
	return nil, "", ""
}

// do sends a command that must succeed.
func (c *child) do(format string, a ...any) []string {
	c.t.Helper()
	f, kind, msg := c.try(format, a...)
	if kind != "" {
		c.t.Fatalf("child %d: %s: %s error: %s", c.pid, fmt.Sprintf(format, a...), kind, msg)
	}
	return f
}

// open has the child open a reference; it returns the buffer's index.
func (c *child) open(name string, off, n int, nonce uint64) string {
	c.t.Helper()
	return c.do("open %s %d %d %d", name, off, n, nonce)[0]
}

// exit has the child exit without releasing anything, and reaps it.
func (c *child) exit() {
	c.t.Helper()
	fmt.Fprintln(c.in, "exit")
	c.wait()
}

// kill kills the child with SIGKILL and reaps it.
func (c *child) kill() {
	if c.waited {
		return
	}
	c.cmd.Process.Kill()
	c.wait()
}

// gone waits until the package sees the child dead (it may remember a
// process's start time for a moment), once the child has been reaped.
func (c *child) gone() {
	c.t.Helper()
	if !c.waited {
		c.t.Fatal("gone before the child was reaped")
	}
	deadline := time.Now().Add(timeout)
	for alive(c.pid, c.start) {
		if time.Now().After(deadline) {
			c.t.Fatalf("child %d still seen alive %v after it was reaped", c.pid, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *child) wait() {
	if c.waited {
		return
	}
	c.waited = true
	c.cmd.Wait()
}
