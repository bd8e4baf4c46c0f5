//go:build linux

package chaos

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// RunEnv names the environment variable that marks every process of a
// run with the run's id: what the orphan scan looks for.
const RunEnv = "PROCESSIONAL_CHAOS_RUN"

// proc is a process the orchestrator started, in a process group of its
// own.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string   // its stdout, line by line; closed at EOF
	done  chan struct{} // closed once reaped
	err   error         // its exit, once done
	meant atomic.Bool   // the orchestrator killed it, or asked it to stop
}

// startProc starts argv with the run's environment, its stderr appended
// to the file logPath, its stdout read line by line.
func startProc(name string, env []string, logPath string, argv ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 1024), done: make(chan struct{})}
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	go func() {
		<-read // Wait closes stdout: read it all first
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitLine waits for a line of stdout starting with prefix.
func (p *proc) waitLine(prefix string, d time.Duration) (string, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.done
				return "", fmt.Errorf("%s exited before saying %q: %v", p.name, prefix, p.err)
			}
			if strings.HasPrefix(l, prefix) {
				return l, nil
			}
		case <-t.C:
			return "", fmt.Errorf("%s did not say %q within %s", p.name, prefix, d)
		}
	}
}

// drain discards the rest of stdout.
func (p *proc) drain() {
	go func() {
		for range p.lines {
		}
	}()
}

// signal sends sig to the process; its exit is then meant, unless sig
// only stops or continues it.
func (p *proc) signal(sig syscall.Signal) {
	if sig != syscall.SIGSTOP && sig != syscall.SIGCONT {
		p.meant.Store(true)
	}
	syscall.Kill(p.pid(), sig)
}

// killGroup kills the process group with SIGKILL, and waits for its
// leader to be reaped.
func (p *proc) killGroup() {
	p.meant.Store(true)
	syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.done
}

// exited reports whether the process was reaped, waiting up to d.
func (p *proc) exited(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// freePorts returns n free TCP ports on host.
func freePorts(host string, n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// running reports whether pid runs: it exists and is no zombie.
func running(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// goneWithin waits up to d for every pid to stop running, and returns
// those that still run.
func goneWithin(pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		var left []int
		for _, pid := range pids {
			if running(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// marked lists the live processes (zombies left out) whose environment
// holds RunEnv=run, this process excepted.
func marked(run string) []int {
	want := []byte(RunEnv + "=" + run + "\x00")
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(append(env, 0), want) || !running(pid) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// describe names a process for a message: its pid and command line.
func describe(pid int) string {
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " ")))
}

// rss is a process's resident memory in bytes, 0 if unknown.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// lockedFile is an append-only log many goroutines write lines to.
type lockedFile struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedFile) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
}
