//go:build linux

package chaos

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/shm"
)

// silentAfter is how long a master may say nothing (it says it is alive
// each second) before it counts as hung.
const silentAfter = 20 * time.Second

// chaos runs the load's warm-up, then faults in a shuffled deck of every
// kind, one after the other, for the run's duration.
func (o *orch) chaos(ctx context.Context) {
	// Warm-up: the masters' load flows.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		o.mu.Lock()
		ok := o.s.OK
		o.mu.Unlock()
		if ok >= 50 {
			break
		}
	}
	o.masterSamples = o.sampleMasters()
	o.natsSamples = o.sampleNATS()
	o.started = time.Now()
	o.log.printf("warm, %d tasks so far: chaos for %s", o.tasks(), o.c.Duration)

	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopWatch:
				return
			case <-t.C:
				o.watchSilence()
			}
		}
	}()
	// The faults go on for the duration, and through one round of every
	// kind at least.
	var deck []string
	rounds := 0
	for (time.Since(o.started) < o.c.Duration || rounds == 0) && ctx.Err() == nil {
		if len(deck) == 0 {
			for _, k := range chaosKinds {
				if o.net != nil || !strings.HasPrefix(k, "netcut") {
					deck = append(deck, k)
				}
			}
			o.rng.Shuffle(len(deck), func(i, j int) { deck[i], deck[j] = deck[j], deck[i] })
		}
		kind := deck[0]
		if deck = deck[1:]; len(deck) == 0 {
			rounds++
		}
		if what := o.fault(kind); what != "" {
			o.mu.Lock()
			o.s.Kills[kind]++
			tasks, ok := o.s.Tasks, o.s.OK
			o.mu.Unlock()
			o.log.printf("%-14s %s (tasks %d, ok %d)", kind, what, tasks, ok)
		}
		o.pause(500*time.Millisecond + time.Duration(o.rng.Int64N(int64(1500*time.Millisecond))))
	}
	close(stopWatch)
	<-watched
}

func (o *orch) pause(d time.Duration) { time.Sleep(d) }

// watchSilence counts a master that has said nothing for silentAfter.
func (o *orch) watchSilence() {
	o.mu.Lock()
	var silent []string
	for id, mp := range o.masters {
		if !mp.silent && !mp.bye && time.Since(mp.last) > silentAfter {
			mp.silent = true
			o.s.Silent++
			silent = append(silent, id)
		}
	}
	o.mu.Unlock()
	for _, id := range silent {
		o.fail("master %s said nothing for %s: hung", id, silentAfter)
	}
}

// fault makes one fault of the kind and undoes it; it says what it did,
// "" when it found nothing to do it to.
func (o *orch) fault(kind string) string {
	lease := o.c.Lease
	switch kind {
	case "worker_cli":
		// cw0 is never killed: the growth of a worker is measured on it.
		id := o.workerIDs[1+o.rng.IntN(len(o.workerIDs)-1)]
		o.workers[id].killGroup()
		down := time.Duration(o.rng.Int64N(int64(time.Second)))
		o.pause(down)
		if err := o.startWorker(id); err != nil {
			o.fail("CLI worker %s would not start again: %v", id, err)
		}
		return fmt.Sprintf("SIGKILL CLI worker %s, back after %s", id, down.Round(time.Millisecond))
	case "worker_spawned":
		id, child, pid := o.pickChild()
		if pid == 0 {
			return ""
		}
		syscall.Kill(pid, syscall.SIGKILL)
		return fmt.Sprintf("SIGKILL %s's spawned worker %s (pid %d)", id, child, pid)
	case "master":
		// m0 is never killed: the growth of a master is measured on it.
		id := fmt.Sprintf("m%d", 1+o.rng.IntN(max(o.c.Masters, 2)-1))
		o.mu.Lock()
		mp := o.masters[id]
		delete(o.masters, id)
		if mp == nil { // it would not start again: said already
			o.mu.Unlock()
			return ""
		}
		var children []int
		for _, pid := range mp.children {
			children = append(children, pid)
		}
		o.mu.Unlock()
		mp.p.signal(syscall.SIGKILL)
		<-mp.p.done
		// Its spawned workers die with it (the lane's end, the
		// parent-death signal): any left after a lease is an orphan.
		if left := goneWithin(children, lease+2*time.Second); len(left) > 0 {
			o.orphans(fmt.Sprintf("spawned workers of the killed master %s", id), left)
		}
		mp.p.killGroup()
		down := time.Duration(o.rng.Int64N(int64(time.Second)))
		o.pause(down)
		if err := o.startMaster(id); err != nil {
			o.fail("master %s would not start again: %v", id, err)
		}
		return fmt.Sprintf("SIGKILL master %s and its %d spawned workers' fate checked, back after %s", id, len(children), down.Round(time.Millisecond))
	case "nats":
		i := o.rng.IntN(3)
		o.nats[i].killGroup()
		down := 200*time.Millisecond + time.Duration(o.rng.Int64N(int64(2*time.Second)))
		o.pause(down)
		if err := o.startNATS(i); err != nil {
			o.fail("NATS server %d would not start again: %v", i, err)
		}
		return fmt.Sprintf("SIGKILL NATS server %d, back after %s", i, down.Round(time.Millisecond))
	case "stop_short", "stop_long":
		d := lease / 2
		if kind == "stop_long" {
			d = 2*lease + 500*time.Millisecond
		}
		var what string
		var pid int
		if o.rng.IntN(3) == 0 {
			var id, child string
			id, child, pid = o.pickChild()
			what = fmt.Sprintf("%s's spawned worker %s", id, child)
		}
		if pid == 0 {
			id := o.workerIDs[o.rng.IntN(len(o.workerIDs))]
			pid, what = o.workers[id].pid(), "CLI worker "+id
		}
		syscall.Kill(pid, syscall.SIGSTOP)
		o.pause(d)
		syscall.Kill(pid, syscall.SIGCONT)
		return fmt.Sprintf("SIGSTOP %s (pid %d) for %s", what, pid, d)
	case "netcut_short", "netcut_long":
		if o.net == nil {
			return ""
		}
		d := lease / 2
		if kind == "netcut_long" {
			d = 2*lease + 500*time.Millisecond
		}
		if err := o.net.set(false); err != nil {
			o.fail("cut the link: %v", err)
			return ""
		}
		o.pause(d)
		if err := o.net.set(true); err != nil {
			o.fail("restore the link: %v", err)
		}
		return fmt.Sprintf("link of CLI worker cwnet cut for %s", d)
	}
	return ""
}

// pickChild picks a live spawned worker of a master at random.
func (o *orch) pickChild() (master, child string, pid int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	type c struct {
		m, id string
		pid   int
	}
	var all []c
	for m, mp := range o.masters {
		for id, pid := range mp.children {
			if running(pid) {
				all = append(all, c{m, id, pid})
			} else {
				delete(mp.children, id)
			}
		}
	}
	if len(all) == 0 {
		return "", "", 0
	}
	sort.Slice(all, func(i, j int) bool { return all[i].id < all[j].id })
	x := all[o.rng.IntN(len(all))]
	return x.m, x.id, x.pid
}

// orphans counts and kills processes that outlived what should have
// taken them.
func (o *orch) orphans(what string, pids []int) {
	var names []string
	for _, pid := range pids {
		names = append(names, describe(pid))
		syscall.Kill(pid, syscall.SIGKILL)
	}
	o.mu.Lock()
	o.s.Orphans += len(pids)
	o.mu.Unlock()
	o.fail("orphans: %s still run: %s", what, strings.Join(names, ", "))
}

// sample is a process's figures at one moment.
type sample struct {
	pid        int
	goroutines int64
	mem        int64 // heap after GC (masters), resident (others)
}

// sampleMasters asks each master for its goroutines and heap after a GC.
func (o *orch) sampleMasters() map[string]sample {
	o.mu.Lock()
	ms := map[string]*masterProc{}
	for id, mp := range o.masters {
		ms[id] = mp
	}
	o.mu.Unlock()
	out := map[string]sample{}
	for id, mp := range ms {
		for len(mp.samples) > 0 {
			<-mp.samples
		}
		fmt.Fprintln(mp.p.stdin, "sample")
		select {
		case e := <-mp.samples:
			out[id] = sample{pid: mp.p.pid(), goroutines: int64(e.Goroutines), mem: int64(e.Heap)}
		case <-time.After(30 * time.Second):
			o.log.printf("master %s gave no sample within 30s", id)
		}
	}
	return out
}

// sampleWorkers counts each CLI worker's goroutines (its stack verb) and
// resident memory.
func (o *orch) sampleWorkers(phase int) {
	o.workerSamples[phase] = map[string]sample{}
	for _, id := range o.workerIDs {
		p := o.workers[id]
		msg, err := o.nc.Request(wire.ControlSubject(id, "stack"), nil, 10*time.Second)
		for try := 0; err != nil && try < 20; try++ { // a worker started again may still be joining the cluster's interest
			time.Sleep(250 * time.Millisecond)
			msg, err = o.nc.Request(wire.ControlSubject(id, "stack"), nil, 10*time.Second)
		}
		if err != nil {
			o.log.printf("worker %s gave no stack: %v", id, err)
			continue
		}
		g := strings.Count("\n"+string(msg.Data), "\ngoroutine ")
		o.workerSamples[phase][id] = sample{pid: p.pid(), goroutines: int64(g), mem: rss(p.pid())}
	}
}

func (o *orch) sampleNATS() map[string]sample {
	out := map[string]sample{}
	for i, p := range o.nats {
		out[fmt.Sprintf("nats%d", i)] = sample{pid: p.pid(), mem: rss(p.pid())}
	}
	return out
}

// growth compares two samples of the same processes (those that lived
// through both) against the bounds.
func (o *orch) growth(what string, start, end map[string]sample, gSlack int64, goroutines2x bool) {
	names := make([]string, 0, len(start))
	for n := range start {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		a, b := start[n], end[n]
		if b.pid == 0 || a.pid != b.pid {
			continue // restarted: not a survivor
		}
		if a.goroutines > 0 {
			o.s.Samples[n+".goroutines"] = [2]int64{a.goroutines, b.goroutines}
		}
		o.s.Samples[n+".mem_mb"] = [2]int64{a.mem >> 20, b.mem >> 20}
		gBound := a.goroutines + gSlack
		if goroutines2x {
			gBound += a.goroutines
		}
		if a.goroutines > 0 && b.goroutines > gBound {
			msg := fmt.Sprintf("%s %s: goroutines %d → %d, past %d", what, n, a.goroutines, b.goroutines, gBound)
			o.s.Growth = append(o.s.Growth, msg)
			o.fail("growth: %s", msg)
		}
		if mBound := 2*a.mem + o.memSlack(what); a.mem > 0 && b.mem > mBound {
			msg := fmt.Sprintf("%s %s: memory %d MiB → %d MiB, past %d MiB", what, n, a.mem>>20, b.mem>>20, mBound>>20)
			o.s.Growth = append(o.s.Growth, msg)
			o.fail("growth: %s", msg)
		}
	}
}

// memSlack is the slack of the memory bound for what: a resident size
// (of a worker, a NATS server) under the race detector, whose shadow
// memory grows with every byte the process ever touched and is never
// given back, gets raceMemorySlack; a heap after GC (a master's) the
// plain memorySlack.
func (o *orch) memSlack(what string) int64 {
	if what != "master" && raceBuilt(o.c.Exe) {
		return raceMemorySlack
	}
	return memorySlack
}

// raceBuilt reports whether the binary at path was built with -race.
func raceBuilt(path string) bool {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// finish stops everything gracefully and checks what is left.
func (o *orch) finish() {
	lease := o.c.Lease
	o.growth("master", o.masterSamples, o.sampleMasters(), goroutineSlack, true)
	o.growth("NATS server", o.natsSamples, o.sampleNATS(), 0, false)

	// The masters finish their tasks in flight (each within its limit),
	// close their workers and say bye.
	o.mu.Lock()
	ms := map[string]*masterProc{}
	for id, mp := range o.masters {
		ms[id] = mp
	}
	o.mu.Unlock()
	for _, mp := range ms {
		mp.p.meant.Store(true)
		fmt.Fprintln(mp.p.stdin, "stop")
		mp.p.stdin.Close()
	}
	for id, mp := range ms {
		if !mp.p.exited(5*lease + 30*time.Second) {
			o.fail("master %s did not stop within %s of being asked", id, 5*lease+30*time.Second)
			mp.p.killGroup()
		}
		<-mp.read // its "bye" may still wait in its lines after it was reaped
		o.mu.Lock()
		bye := mp.bye
		o.mu.Unlock()
		if !bye || mp.p.err != nil {
			o.fail("master %s did not stop cleanly: bye %v, exit %v (see %s)", id, bye, mp.p.err, filepath.Join(o.c.Dir, id+".log"))
		}
	}
	// The CLI workers are idle again: their goroutines are back where
	// they were before the load.
	time.Sleep(lease + time.Second) // the leases of masters killed lapse
	o.sampleWorkers(1)
	o.growth("CLI worker", o.workerSamples[0], o.workerSamples[1], workerIdleSlack, false)

	for _, id := range o.workerIDs {
		o.workers[id].signal(syscall.SIGTERM)
	}
	for _, id := range o.workerIDs {
		if p := o.workers[id]; !p.exited(20 * time.Second) {
			o.fail("CLI worker %s did not stop on SIGTERM", id)
			p.killGroup()
		}
	}
	o.nc.Close()
	for i, p := range o.nats {
		p.signal(syscall.SIGTERM)
		if !p.exited(20 * time.Second) {
			o.fail("NATS server %d did not stop on SIGTERM", i)
			p.killGroup()
		}
	}
	// What is left of the run after a lease is an orphan.
	time.Sleep(lease + time.Second)
	if left := marked(o.run); len(left) > 0 {
		o.orphans("after the run", left)
	}
	// Segments: those of processes killed are the next master's to sweep
	// (this process plays it); any the sweep leaves is leaked.
	o.s.ShmSwept = o.sweep()
	if left := segments(o.shm); len(left) > 0 {
		o.s.LeakedShm = len(left)
		o.fail("leaked shared memory: %s", strings.Join(left, " "))
	}
	// A race-built process reports a race in its log and goes on: a
	// killed one never exits 66, and a CLI worker's exit is not read.
	if raced := raceReports(o.c.Dir); len(raced) > 0 {
		o.fail("race reports in the logs of %s (in %s)", strings.Join(raced, ", "), o.c.Dir)
	}
	o.log.printf("done: %d tasks", o.tasks())
}

// tasks is how many tasks the masters reported so far.
func (o *orch) tasks() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.s.Tasks
}

// raceReports names the processes whose log in dir holds a report of
// the race detector.
func raceReports(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			out = append(out, strings.TrimSuffix(e.Name(), ".log"))
		}
	}
	return out
}

// sweep runs shm.Sweep on the run's directory.
func (o *orch) sweep() int {
	dir := shm.Dir
	shm.Dir = o.shm
	defer func() { shm.Dir = dir }()
	n, _ := shm.Sweep()
	return n
}

// segments lists processional's segments in dir.
func segments(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), shm.Prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// teardown removes whatever the run made, even when it failed half-way.
func (o *orch) teardown() {
	for _, p := range o.nats {
		if p != nil {
			p.killGroup()
		}
	}
	for _, p := range o.workers {
		p.killGroup()
	}
	o.mu.Lock()
	ms := o.masters
	o.masters = nil
	o.mu.Unlock()
	for _, mp := range ms {
		mp.p.killGroup()
	}
	if o.nc != nil {
		o.nc.Close()
	}
	for _, pid := range marked(o.run) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if o.net != nil {
		o.net.remove()
	}
	if o.shm != "" {
		os.RemoveAll(o.shm)
	}
	o.mu.Lock()
	failed := len(o.s.Failures) > 0
	o.mu.Unlock()
	if !failed && o.c.Dir != "" && !o.keepDir {
		os.RemoveAll(o.c.Dir)
	}
}
