package master

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
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
	abandoned            atomic.Bool // for systems that cannot wait on the pipe
	sys                  procSys     // the system's hold on the process: a Job Object on Windows
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
func (p *process) abandon() {
	p.abandonOnce.Do(func() {
		p.abandoned.Store(true)
		p.abandonW.Close()
	})
}
