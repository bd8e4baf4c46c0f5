//go:build linux

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/internal/wire"
)

// Config configures a run ([Run]).
type Config struct {
	Exe      string        // the processional binary: servers, workers and masters are it
	Duration time.Duration // how long the chaos lasts, after the warm-up
	Seed     int64
	Lease    time.Duration // the masters' lease
	Workers  int           // CLI workers on loopback (at least 3)
	Masters  int           // masters (at least 2)
	Loops    int           // tasks in flight in each master
	NetCut   bool          // cut a namespaced worker's link, if root
	Log      io.Writer     // progress and every broken invariant
	Dir      string        // where the processes' logs go (kept on failure)
}

// The chaos kinds, each done in turn in a shuffled deck.
var chaosKinds = []string{"worker_cli", "worker_spawned", "master", "nats", "stop_short", "stop_long", "netcut_short", "netcut_long"}

// The growth bounds: a process sampled at the start of the steady state
// and at its end has grown when its count passes 2×start+slack.
const (
	goroutineSlack = 100
	memorySlack    = 64 << 20
	// raceMemorySlack replaces memorySlack for a resident size under
	// the race detector (see memSlack).
	raceMemorySlack = 512 << 20
	// workerIdleSlack bounds an idle CLI worker's goroutines at the end
	// against its idle count before the load.
	workerIdleSlack = 25
)

// Run runs the soak and returns its summary; Summary.OKRun says whether
// every invariant held. An error says the run could not be made.
func Run(ctx context.Context, c Config) (Summary, error) {
	o := &orch{c: c, log: &lockedFile{w: c.Log}, run: "chaos" + wire.NewID("r")[2:],
		rng: rand.New(rand.NewPCG(uint64(c.Seed), 0x0c4a05)), token: wire.NewID("tok"),
		s: Summary{Seed: c.Seed, Errors: map[string]int{}, Ops: map[string]int{}, Kills: map[string]int{},
			Samples: map[string][2]int64{}, Growth: []string{}, Failures: []string{}},
		masters: map[string]*masterProc{}, stuck: map[uint64]bool{}}
	for _, k := range chaosKinds {
		o.s.Kills[k] = 0
	}
	defer o.teardown()
	start := time.Now()
	if err := o.setup(); err != nil {
		return Summary{Seed: c.Seed}, err // o.s: its readers may still count
	}
	o.chaos(ctx)
	o.finish()
	// Every master's events are in: what its reader counted is ordered
	// before the summary is read (a reader still at the last lines of a
	// master that had exited raced the summary, under -race in CI).
	o.readers.Wait()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.s.DurationS = time.Since(start).Round(100 * time.Millisecond).Seconds()
	o.s.OKRun = len(o.s.Failures) == 0
	return o.s, nil
}

type orch struct {
	c     Config
	log   *lockedFile
	run   string
	rng   *rand.Rand
	token string
	env   []string
	shm   string // the run's shared-memory directory

	natsAddrs []string // client host:port, kept across restarts
	routes    []string // route host:port
	natsURLs  string
	nats      []*proc
	workers   map[string]*proc // CLI workers by id
	workerIDs []string
	net       *netHost
	nc        *nats.Conn // the orchestrator's own, to ask workers

	readers sync.WaitGroup // the masters' readers (readMaster)

	mu      sync.Mutex
	s       Summary
	masters map[string]*masterProc
	stuck   map[uint64]bool
	started time.Time // the chaos

	logged        map[string]bool // the processes whose log this run opened already
	masterSamples map[string]sample
	natsSamples   map[string]sample
	workerSamples [2]map[string]sample // idle, before the load and after it
	keepDir       bool                 // the logs' directory was given: keep it
}

// masterProc is a master's process and what it said.
type masterProc struct {
	p        *proc
	children map[string]int // its spawned workers: id → pid
	last     time.Time      // its last line
	silent   bool           // counted silent already
	samples  chan Event
	bye      bool
	read     chan struct{} // closed once its reader took in its last line
}

func (o *orch) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	o.log.printf("INVARIANT BROKEN: %s", msg)
	o.mu.Lock()
	if len(o.s.Failures) < 50 {
		o.s.Failures = append(o.s.Failures, msg)
	}
	o.mu.Unlock()
}

func (o *orch) setup() error {
	var err error
	if o.c.Dir == "" {
		if o.c.Dir, err = os.MkdirTemp("", "processional-chaos-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(o.c.Dir, 0o755); err != nil {
		return err
	} else {
		o.keepDir = true
	}
	o.shm = filepath.Join(shmRoot(), "chaos-"+o.run)
	if err := os.Mkdir(o.shm, 0o700); err != nil {
		return err
	}
	o.env = append(os.Environ(), RunEnv+"="+o.run, "PROCESSIONAL_SHM_DIR="+o.shm)
	o.log.printf("run %s, seed %d, lease %s, logs in %s, shared memory in %s", o.run, o.c.Seed, o.c.Lease, o.c.Dir, o.shm)

	o.s.NetCut = "on"
	if !o.c.NetCut {
		o.s.NetCut = "off (--netcut=false)"
	} else if why := netCutPossible(); why != "" {
		o.s.NetCut = "not possible: " + why
	} else if o.net, err = newNetHost(o.run, o.rng); err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	if o.net == nil {
		o.log.printf("no link cuts: %s", o.s.NetCut)
	}

	// Three NATS servers joined by routes; with a namespaced host, the
	// last listens on its link's address here, the only one it reaches.
	hosts := []string{"127.0.0.1", "127.0.0.1", "127.0.0.1"}
	if o.net != nil {
		hosts[2] = o.net.hostIP
	}
	ports, err := freePorts("127.0.0.1", 6)
	if err != nil {
		return err
	}
	var urls []string
	for i := range 3 {
		if hosts[i] != "127.0.0.1" {
			p, err := freePorts(hosts[i], 1)
			if err != nil {
				return err
			}
			ports[i] = p[0]
		}
		o.natsAddrs = append(o.natsAddrs, fmt.Sprintf("%s:%d", hosts[i], ports[i]))
		o.routes = append(o.routes, fmt.Sprintf("127.0.0.1:%d", ports[3+i]))
		urls = append(urls, "nats://"+o.natsAddrs[i])
	}
	o.natsURLs = strings.Join(urls, ",")
	o.nats = make([]*proc, 3)
	for i := range 3 {
		if err := o.startNATS(i); err != nil {
			return err
		}
	}
	if o.nc, err = nats.Connect(o.natsURLs, nats.Token(o.token), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond)); err != nil {
		return err
	}

	o.workers = map[string]*proc{}
	for i := range max(o.c.Workers, 3) {
		o.workerIDs = append(o.workerIDs, fmt.Sprintf("cw%d", i))
	}
	if o.net != nil {
		o.workerIDs = append(o.workerIDs, "cwnet")
	}
	for _, id := range o.workerIDs {
		if err := o.startWorker(id); err != nil {
			return err
		}
	}
	// The workers' idle figures, before any load.
	o.sampleWorkers(0)
	for i := range max(o.c.Masters, 2) {
		if err := o.startMaster(fmt.Sprintf("m%d", i)); err != nil {
			return err
		}
	}
	return nil
}

// shmRoot is where the run's shared-memory directory goes: beside the
// segments of every other process, on the same file system.
func shmRoot() string {
	if d := os.Getenv("PROCESSIONAL_SHM_DIR"); d != "" {
		return d
	}
	return "/dev/shm"
}

// logFile is the path of the log of the process name. The run's first
// start of it empties a log an earlier run left in a directory given
// again (--logs): its lines, a race report among them, are not this
// run's. Called by the orchestrator's goroutine alone.
func (o *orch) logFile(name string) string {
	path := filepath.Join(o.c.Dir, name+".log")
	if !o.logged[name] {
		if o.logged == nil {
			o.logged = map[string]bool{}
		}
		o.logged[name] = true
		os.Truncate(path, 0)
	}
	return path
}

func (o *orch) startNATS(i int) error {
	var routes []string
	for j, r := range o.routes {
		if j != i {
			routes = append(routes, "nats://"+r)
		}
	}
	name := fmt.Sprintf("nats%d", i)
	var lastErr error
	for attempt := 0; attempt < 100; attempt++ { // its port may linger a moment after a kill
		p, err := startProc(name, o.env, o.logFile(name), o.c.Exe, "nats", "--listen", o.natsAddrs[i],
			"--token", o.token, "--name", name, "--cluster", o.routes[i], "--routes", strings.Join(routes, ","))
		if err != nil {
			return err
		}
		if _, lastErr = p.waitLine("nats ", 30*time.Second); lastErr == nil {
			p.drain()
			go o.watchExit(p)
			o.nats[i] = p
			return nil
		}
		p.killGroup()
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s would not start: %v", name, lastErr)
}

func (o *orch) startWorker(id string) error {
	args := []string{o.c.Exe, "worker", "--token", o.token, "--id", id, "--pool", "chaos", "--retries", "60"}
	if id == "cwnet" {
		args = append([]string{"ip", "netns", "exec", o.net.ns}, append(args, "--nats", "nats://"+o.natsAddrs[2])...)
	} else {
		// Each starts on another server of the cluster.
		n := len(o.workers)
		urls := strings.Split(o.natsURLs, ",")
		args = append(args, "--nats", strings.Join(append(urls[n%3:], urls[:n%3]...), ","))
	}
	p, err := startProc(id, o.env, o.logFile(id), args...)
	if err != nil {
		return err
	}
	if _, err := p.waitLine("worker "+id+" serving", 90*time.Second); err != nil {
		p.killGroup()
		return err
	}
	p.drain()
	go o.watchExit(p)
	o.mu.Lock()
	o.workers[id] = p
	o.mu.Unlock()
	return nil
}

func (o *orch) startMaster(id string) error {
	p, err := startProc(id, o.env, o.logFile(id), o.c.Exe, "chaos", "--role", "master",
		"--id", id, "--nats", o.natsURLs, "--token", o.token, "--seed", fmt.Sprint(o.rng.Int64()),
		"--lease", o.c.Lease.String(), "--loops", fmt.Sprint(o.c.Loops))
	if err != nil {
		return err
	}
	mp := &masterProc{p: p, children: map[string]int{}, last: time.Now(), samples: make(chan Event, 4), read: make(chan struct{})}
	go o.watchExit(p)
	ready := make(chan struct{})
	o.readers.Add(1)
	go o.readMaster(id, mp, ready)
	t := time.NewTimer(90 * time.Second)
	defer t.Stop()
	select {
	case <-ready:
	case <-p.done:
		return fmt.Errorf("master %s exited before it was ready: %v (see %s)", id, p.err, filepath.Join(o.c.Dir, id+".log"))
	case <-t.C:
		p.killGroup()
		return fmt.Errorf("master %s not ready within 90s", id)
	}
	o.mu.Lock()
	o.masters[id] = mp
	o.mu.Unlock()
	return nil
}

// watchExit counts a process that exits when nobody meant it to: it
// crashed.
func (o *orch) watchExit(p *proc) {
	<-p.done
	if p.meant.Load() {
		return
	}
	o.mu.Lock()
	o.s.Crashed++
	o.mu.Unlock()
	o.fail("%s (pid %d) exited by itself: %v (see %s)", p.name, p.pid(), p.err, filepath.Join(o.c.Dir, p.name+".log"))
}

// readMaster takes in a master's events until its stdout ends. The
// process may be reaped while its last lines still wait in mp.p.lines:
// mp.read says when they are all in.
func (o *orch) readMaster(id string, mp *masterProc, ready chan struct{}) {
	defer o.readers.Done()
	defer close(mp.read)
	for line := range mp.p.lines {
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			o.log.printf("%s: %s", id, line)
			continue
		}
		o.mu.Lock()
		mp.last = time.Now()
		switch e.Ev {
		case "ready":
			close(ready)
		case "child":
			mp.children[e.ID] = e.PID
		case "sample":
			select {
			case mp.samples <- e:
			default:
			}
		case "bye":
			mp.bye = true
		case "stuck":
			o.hung(id, e)
		case "task":
			o.task(id, e)
		case "log":
			o.log.printf("%s: %s", id, e.Msg)
		}
		o.mu.Unlock()
	}
}

// hung counts a task past its limit once; o.mu is held.
func (o *orch) hung(master string, e Event) {
	if o.stuck[e.Task] {
		return
	}
	o.stuck[e.Task] = true
	o.s.Hung++
	o.mu.Unlock()
	o.fail("%s: task %x (%s on %s) hung: %d ms, past its limit of %d ms (deadline %d ms + lease + 1 s)", master, e.Task, e.Op, e.Target, e.MS, e.LimitMS, e.DeadlineMS)
	o.mu.Lock()
}

// task checks and counts a task's outcome; o.mu is held.
func (o *orch) task(master string, e Event) {
	o.s.Tasks++
	o.s.Ops[e.Op]++
	if e.Hung {
		o.hung(master, e)
	}
	var broken string
	switch {
	case e.Wrong:
		o.s.Wrong++
		broken = "a result reached the wrong task: " + e.Msg
	case e.Kind == "":
		o.s.OK++
	default:
		o.s.Errors[e.Kind]++
		o.s.WorstFailMS = max(o.s.WorstFailMS, e.MS)
		if e.MS > e.DeadlineMS {
			o.s.WorstOverMS = max(o.s.WorstOverMS, e.MS-e.DeadlineMS)
		}
		switch {
		case e.Kind == Unnamed:
			o.s.Unnamed++
			broken = "an unnamed error: " + e.Msg
		case !e.Expected:
			o.s.Unexpected++
			broken = "an error no fault explains (" + e.Kind + "): " + e.Msg
		}
		if e.Idem {
			o.s.IdemFailed++
			if broken == "" {
				broken = "an idempotent pool Map failed while members survived (" + e.Kind + "): " + e.Msg
			}
		}
	}
	if broken != "" {
		o.mu.Unlock()
		o.fail("%s: task %x (%s on %s, %d ms, deadline %d ms): %s", master, e.Task, e.Op, e.Target, e.MS, e.DeadlineMS, broken)
		o.mu.Lock()
	}
}
