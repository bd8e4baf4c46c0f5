//go:build linux

package chaos

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/processional/processional/master"
	"github.com/processional/processional/shm"
)

// MasterConfig configures a master of the soak ([RunMaster]).
type MasterConfig struct {
	ID    string        // the master's name in the run
	NATS  string        // the cluster's client URLs, comma-separated
	Token string        // the cluster's token
	Seed  int64         // its load's randomness
	Lease time.Duration // the lease it holds on its workers
	Pool  string        // the pool of the CLI workers
	Loops int           // tasks in flight at once
}

// The ops of the load, and how often each is picked.
var ops = []struct {
	name   string
	weight int
}{
	{"invoke", 4}, {"schedule", 3}, {"thread", 3}, {"idempotent", 2}, {"ref", 2},
	{"shm", 2}, {"big", 1}, {"map", 1}, {"stream", 2},
}

// mapItems is how many items a pool Map has.
const mapItems = 16

// RunMaster is the master role of the soak: it joins the cluster, spawns
// two workers of its own (one on its lane, one in the pool), attaches to
// the pool, and runs the load until stdin says "stop" (or ends), writing
// an [Event] per line on out. "sample" on stdin asks for a sample of its
// goroutines and heap, after a GC.
func RunMaster(ctx context.Context, c MasterConfig, in io.Reader, out io.Writer) error {
	ev := newEvents(out)
	m, err := master.New(ctx, master.WithNATS(c.NATS), master.WithToken(c.Token), master.WithLease(c.Lease, c.Lease/4))
	if err != nil {
		return err
	}
	defer m.Close()
	r := &runner{c: c, m: m, ev: ev, inflight: map[uint64]*flight{}}
	h := fnv.New64a()
	h.Write([]byte(c.ID))
	h.Write(fmt.Appendf(nil, "%d-%d", os.Getpid(), time.Now().UnixNano()))
	r.idBase = h.Sum64() << 24 // 16M tasks per master before ids wrap into another's: plenty

	life, stopKeepers := context.WithCancel(context.Background())
	var keepers sync.WaitGroup
	for i, opts := range [][]master.SpawnOption{{}, {master.InPool(c.Pool)}} {
		keepers.Add(1)
		go func() {
			defer keepers.Done()
			r.keepSpawned(life, i, opts)
		}()
	}
	// The pool: found once something answers, refreshed each second so
	// that restarted members join again.
	for r.pool == nil && life.Err() == nil {
		p, err := m.Pool(life, c.Pool)
		if err == nil {
			r.mu.Lock()
			r.pool = p
			r.mu.Unlock()
			break
		}
		ev.send(Event{Ev: "log", Msg: "pool: " + err.Error()})
		time.Sleep(200 * time.Millisecond)
	}
	keepers.Add(1)
	go func() {
		defer keepers.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-life.Done():
				return
			case <-t.C:
				r.pool.Refresh(life) // none left: the next Refresh finds them back
			}
		}
	}()
	ev.send(Event{Ev: "ready", PID: os.Getpid()})

	// The load, and its watchdog.
	load, stopLoad := context.WithCancel(context.Background())
	var loops sync.WaitGroup
	for i := range c.Loops {
		loops.Add(1)
		go func() {
			defer loops.Done()
			rng := rand.New(rand.NewPCG(uint64(c.Seed), r.idBase+uint64(i)))
			for load.Err() == nil {
				r.one(rng)
			}
		}()
	}
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		alive := time.Now()
		for {
			select {
			case <-life.Done():
				return
			case now := <-t.C:
				r.watch(now)
				if now.Sub(alive) >= time.Second {
					ev.send(Event{Ev: "alive"})
					alive = now
				}
			}
		}
	}()

	// Commands, until stop.
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if line := sc.Text(); line == "stop" {
			break
		} else if line == "sample" {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			ev.send(Event{Ev: "sample", Goroutines: runtime.NumGoroutine(), Heap: ms.HeapAlloc})
		}
	}
	// Each task in flight ends within its limit: wait for them (the
	// watchdog reports those that do not).
	stopLoad()
	loops.Wait()
	stopKeepers()
	keepers.Wait()
	<-watchDone
	if r.pool != nil {
		r.pool.Close()
	}
	r.mu.Lock()
	spawned := r.spawned
	r.mu.Unlock()
	for _, s := range spawned {
		if s != nil {
			s.Close()
		}
	}
	err = m.Close()
	ev.send(Event{Ev: "bye"})
	return err
}

type runner struct {
	c      MasterConfig
	m      *master.Master
	ev     *events
	idBase uint64
	seq    atomic.Uint64

	mu       sync.Mutex
	spawned  [2]*master.Slave
	pool     *master.Pool
	inflight map[uint64]*flight
}

// flight is a task in flight, for the watchdog.
type flight struct {
	op, target string
	start      time.Time
	deadline   time.Duration
	limit      time.Duration
	stuck      bool // reported by the watchdog
}

// keepSpawned keeps worker i spawned: it spawns it again when it dies,
// and closes it when life ends.
func (r *runner) keepSpawned(life context.Context, i int, opts []master.SpawnOption) {
	for life.Err() == nil {
		id := fmt.Sprintf("%s-s%d-%d", r.c.ID, i, r.seq.Add(1))
		s, err := r.m.Spawn(life, append(opts, master.WithID(id))...)
		if err != nil {
			if life.Err() == nil {
				r.ev.send(Event{Ev: "log", Msg: "spawn: " + err.Error()})
				time.Sleep(200 * time.Millisecond)
			}
			continue
		}
		r.ev.send(Event{Ev: "child", ID: s.ID(), PID: s.PID()})
		r.mu.Lock()
		r.spawned[i] = s
		r.mu.Unlock()
		select {
		case <-s.Exited():
			r.mu.Lock()
			r.spawned[i] = nil
			r.mu.Unlock()
		case <-life.Done():
			return // closed by RunMaster, after the load
		}
	}
}

// targets are the workers a task may go to now: the spawned ones, and the
// pool's live members.
func (r *runner) targets() []*master.Slave {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*master.Slave
	for _, s := range r.spawned {
		if s != nil {
			out = append(out, s)
		}
	}
	if r.pool != nil {
		out = append(out, r.pool.Members()...)
	}
	return out
}

func (r *runner) watch(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, f := range r.inflight {
		if !f.stuck && now.Sub(f.start) > f.limit {
			f.stuck = true
			r.ev.send(Event{Ev: "stuck", Task: id, Op: f.op, Target: f.target, MS: now.Sub(f.start).Milliseconds(),
				DeadlineMS: f.deadline.Milliseconds(), LimitMS: f.limit.Milliseconds()})
		}
	}
}

func pickOp(rng *rand.Rand) string {
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	n := rng.IntN(total)
	for _, o := range ops {
		if n -= o.weight; n < 0 {
			return o.name
		}
	}
	return ops[0].name
}

// one runs one task of the load and reports it.
func (r *runner) one(rng *rand.Rand) {
	op := pickOp(rng)
	var target *master.Slave
	name := "pool"
	if op != "map" {
		ts := r.targets()
		if len(ts) == 0 {
			time.Sleep(50 * time.Millisecond) // nothing to call yet: the keepers are at work
			return
		}
		target = ts[rng.IntN(len(ts))]
		name = target.ID()
	} else if r.pool == nil {
		time.Sleep(50 * time.Millisecond)
		return
	}
	deadline := 5 * time.Second
	switch {
	case op == "map":
		deadline = 4*r.c.Lease + 10*time.Second // room to send items again
	case rng.IntN(6) == 0:
		deadline = 300 * time.Millisecond
	}
	var sleep time.Duration
	switch rng.IntN(10) {
	case 0:
		sleep = time.Second // past the short deadline
	case 1, 2:
		sleep = time.Duration(rng.IntN(200)) * time.Millisecond
	}
	id := r.idBase + r.seq.Add(1)
	limit := deadline + r.c.Lease + time.Second
	start := time.Now()
	r.mu.Lock()
	r.inflight[id] = &flight{op: op, target: name, start: start, deadline: deadline, limit: limit}
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	wrong, err := r.run(ctx, rng, op, target, id, sleep)
	cancel()
	elapsed := time.Since(start)

	r.mu.Lock()
	stuck := r.inflight[id].stuck
	delete(r.inflight, id)
	r.mu.Unlock()
	kind, expected := Classify(err)
	e := Event{Ev: "task", Task: id, Op: op, Target: name, Kind: kind, Expected: expected, MS: elapsed.Milliseconds(),
		DeadlineMS: deadline.Milliseconds(), LimitMS: limit.Milliseconds(), Wrong: wrong != "", Hung: stuck || elapsed > limit,
		Idem: op == "map"}
	if wrong != "" {
		e.Msg = wrong
	} else if err != nil && (!expected || rng.IntN(20) == 0) {
		e.Msg = err.Error()
	}
	r.ev.send(e)
}

// run runs op; wrong says how a result was not the task's own.
func (r *runner) run(ctx context.Context, rng *rand.Rand, op string, s *master.Slave, id uint64, sleep time.Duration) (wrong string, err error) {
	// Wait's own context never ends first: the task must end by itself.
	bg := context.Background()
	check := func(v uint64, err error) (string, error) {
		if err == nil && v != Mix(id) {
			return fmt.Sprintf("task %x got %x, want %x", id, v, Mix(id)), nil
		}
		return "", err
	}
	arg := TagArg{ID: id, Sleep: sleep}
	switch op {
	case "invoke":
		return check(master.Invoke(ctx, s, Tag, arg))
	case "schedule":
		return check(master.Schedule(ctx, s, Tag, arg).Wait(bg))
	case "thread":
		return check(master.Thread(ctx, s, Tag, arg).Wait(bg))
	case "idempotent":
		return check(master.Invoke(ctx, s.Idempotent(), Tag, arg))
	case "ref":
		ref, err := master.Wrap(ctx, s, NewBox, id)
		if err != nil {
			return "", err
		}
		defer ref.Close()
		v, err := master.Method[uint64](ctx, ref, "Add", uint64(7)).Wait(bg)
		if err == nil && v != id+7 {
			return fmt.Sprintf("ref of task %x: Add(7) = %x", id, v), nil
		}
		return "", err
	case "shm":
		n := 4096 << rng.IntN(9) // 4 KiB to 1 MiB
		buf, err := shm.New(n)
		if err != nil {
			return "", err
		}
		defer buf.Close()
		b := buf.Bytes()
		Pattern(id, b[:n/2])
		w, err := check(master.Invoke(ctx, s, ShmFill, ShmArg{ID: id, Buf: buf}))
		if w != "" || err != nil {
			return w, err
		}
		want := make([]byte, n-n/2)
		Pattern(^id, want)
		if !bytes.Equal(b[n/2:], want) {
			return fmt.Sprintf("shm of task %x: the worker's half is not the task's", id), nil
		}
		return "", nil
	case "big":
		n := 256<<10 + rng.IntN(3<<20)
		b := make([]byte, n)
		Pattern(id, b)
		got, err := master.Invoke(ctx, s, Big, b)
		if err == nil && !bytes.Equal(got, Reversed(b)) {
			return fmt.Sprintf("big value of task %x (%d bytes): %d bytes back, not its own", id, n, len(got)), nil
		}
		return "", err
	case "stream":
		n := 1 + rng.IntN(300)
		stop := n
		if rng.IntN(4) == 0 {
			stop = rng.IntN(n) // break early
		}
		i := 0
		for v, err := range master.Stream(ctx, s, Seq, SeqArg{ID: id, N: n}) {
			if err != nil {
				return "", err
			}
			if v != Mix(id)+uint64(i) {
				return fmt.Sprintf("stream of task %x: item %d is %x", id, i, v), nil
			}
			if i++; i >= stop {
				break
			}
		}
		if stop == n && i != n {
			return fmt.Sprintf("stream of task %x: %d items of %d, and no error", id, i, n), nil
		}
		return "", nil
	case "map":
		r.mu.Lock()
		p := r.pool
		r.mu.Unlock()
		items := make([]TagArg, mapItems)
		for i := range items {
			items[i] = TagArg{ID: id + uint64(i)<<56}
		}
		res, errs := master.Map(ctx, p, Tag, items, master.Idempotent())
		for i := range items {
			if errs[i] != nil {
				return "", errs[i]
			}
			if res[i] != Mix(items[i].ID) {
				return fmt.Sprintf("map of task %x: item %d got %x", id, i, res[i]), nil
			}
		}
		return "", nil
	}
	return "", errors.New("chaos: unknown op " + op)
}
