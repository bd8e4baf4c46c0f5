package master

import (
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// process is what the master holds of a worker process it spawned beyond
// exec.Cmd: the read ends of its output pipes, copied by goroutines of
// its own, and a pipe whose closing tells watchProcess to let go of the
// process (a detached or persistent worker outlives the master's Close).
type process struct {
	outR, errR           *os.File
	copiers              sync.WaitGroup
	abandonR, abandonW   *os.File
	abandonOnce, outOnce sync.Once
}

// newProcess makes the pipes: give outW and errW to the child as its
// stdout and stderr, and close them once it has started.
func newProcess() (p *process, outW, errW *os.File, err error) {
	p = new(process)
	var files []*os.File
	for _, pair := range []struct{ r, w **os.File }{{&p.outR, &outW}, {&p.errR, &errW}, {&p.abandonR, &p.abandonW}} {
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, nil, nil, err
		}
		*pair.r, *pair.w = r, w
		files = append(files, r, w)
	}
	return p, outW, errW, nil
}

// copyOutput copies the child's output to the writers until it closes its
// ends, or until closeOutput.
func (p *process) copyOutput(stdout, stderr io.Writer) {
	p.copiers.Add(2) // closeOutput awaits them
	for _, c := range []struct {
		r *os.File
		w io.Writer
	}{{p.outR, stdout}, {p.errR, stderr}} {
		go func() {
			defer p.copiers.Done()
			io.Copy(c.w, c.r)
		}()
	}
}

// closeOutput stops copying: what the child writes afterwards is lost
// (a worker ignores the broken pipe).
func (p *process) closeOutput() {
	p.outOnce.Do(func() {
		p.outR.Close()
		p.errR.Close()
	})
	p.copiers.Wait()
}

// drainOutput waits for the child's output to end (it exited and its
// group was killed), a second at most: a process of another group may
// still hold the pipes.
func (p *process) drainOutput() {
	done := make(chan struct{})
	go func() { p.copiers.Wait(); close(done) }() // ends with the copiers, which closeOutput awaits
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	p.closeOutput()
}

// abandon tells watchProcess to stop waiting for the process: the master lets go of it.
func (p *process) abandon() { p.abandonOnce.Do(func() { p.abandonW.Close() }) }

// waitExit blocks until process pid has exited, without reaping it, and
// reports true; or until abandon, and reports false.
func (p *process) waitExit(pid int) bool {
	defer p.abandonR.Close()
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(p.abandonR.Fd()), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || fds[0].Revents != 0 {
				break
			}
			if fds[1].Revents != 0 {
				unix.Close(fd)
				return false
			}
		}
		unix.Close(fd)
		var info unix.Siginfo
		for unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
		}
		return true
	}
	// No pidfd (an old kernel, no file descriptor left): look for the exit
	// between short waits on the abandon pipe.
	fds := []unix.PollFd{{Fd: int32(p.abandonR.Fd()), Events: unix.POLLIN}}
	for {
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err == nil && info.Signo != 0 {
			return true
		}
		if n, _ := unix.Poll(fds, 20); n > 0 {
			return false
		}
	}
}
