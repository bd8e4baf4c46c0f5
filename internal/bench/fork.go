package bench

import (
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Linux sends a child its parent-death signal when the *thread* that
// forked it exits, not the process; and Go ends a thread whenever a
// goroutine locked to it returns (a master's spawner at Close, a
// SlaveThread). A child forked from whatever thread the caller runs on
// can be killed by the end of that thread, locked since by another
// goroutine: a worker gone without a word, and a pair waiting on it for
// ever. So the bench forks every child from one thread of its own, locked
// for as long as an Env or a Load holds it.
var fork struct {
	sync.Mutex
	holds int
	jobs  chan func()
	done  chan struct{}
}

// holdFork keeps the fork thread running until release, which is
// idempotent; the last hold's release lets the thread go, once every
// child it forked is reaped.
func holdFork() (release func()) {
	fork.Lock()
	defer fork.Unlock()
	if fork.holds == 0 {
		fork.jobs, fork.done = make(chan func()), make(chan struct{})
		go forkThread(fork.jobs, fork.done)
	}
	fork.holds++
	var once sync.Once
	return func() {
		once.Do(func() {
			fork.Lock()
			defer fork.Unlock()
			if fork.holds--; fork.holds == 0 {
				close(fork.jobs)
				<-fork.done
			}
		})
	}
}

func forkThread(jobs <-chan func(), done chan<- struct{}) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread() // its children are reaped by now
	defer close(done)
	for job := range jobs {
		job()
	}
}

// startCmd starts cmd in a process group of its own, from the fork
// thread, with SIGKILL as its parent-death signal. The caller holds the
// fork thread.
func startCmd(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	ownGroup(cmd.SysProcAttr)
	fork.Lock()
	jobs := fork.jobs
	if fork.holds == 0 {
		fork.Unlock()
		return fmt.Errorf("bench: %s started with no hold on the fork thread", cmd.Path)
	}
	errc := make(chan error, 1)
	jobs <- func() { errc <- cmd.Start() }
	fork.Unlock()
	return <-errc
}
