package master

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/embedded"
	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/internal/natsauth"
	"github.com/processional/processional/internal/serve"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/shm"
)

// Master is a process's end of the bus: its NATS connection (to an
// embedded server it started, or to a server it was given), and the
// workers it spawned. Its methods are safe for concurrent use.
type Master struct {
	id       string
	srv      *embedded.Server // nil when the server is someone else's
	nc       *nats.Conn
	url      string // for workers
	token    string
	files    natsauth.Files // credentials files handed to spawned workers
	ownNC    bool           // the connection is the master's to close
	maxValue int64          // see WithMaxValue

	reconnects atomic.Uint64     // nc's reconnects handled already: see sawReconnect
	maxPay     chunks.MaxPayload // the server's max payload
	slaveIDs   atomic.Uint64     // slaves made: each numbers its calls from its own base (newSlave)

	exportMu sync.Mutex
	exports  *serve.Worker // serves the objects the master exports; nil until the first Export

	spawnJobs chan func()   // run on the spawner thread
	spawnDone chan struct{} // closed when the spawner thread has exited
	spawnOnce sync.Once     // starts the spawner thread at the first spawn
	closing   chan struct{} // closed when Close starts: in-flight spawns give up

	lease      time.Duration // see WithLease
	childLease time.Duration // see WithChildLease
	interval   time.Duration
	hbInbox    string             // where workers acknowledge heartbeats
	hbSub      *nats.Subscription // on hbInbox
	hbStop     chan struct{}      // stops heartbeats
	hbDone     chan struct{}      // closed when heartbeats has returned

	mu          sync.Mutex
	slaves      map[string]*slave        // by worker id
	reserved    map[string]bool          // ids of spawns in flight
	attaching   map[string]chan struct{} // attaches in flight for references, closed when done
	closeDone   chan struct{}            // closed when Close has finished
	spawning    sync.WaitGroup           // spawns in flight; Close waits for them
	flushers    sync.WaitGroup           // goroutines sending batches of calls; Close waits for them
	flushMu     sync.Mutex               // guards flushClosed, and Add to flushers
	flushClosed bool                     // Close waits for the flushers: no more start
	closed      bool
}

// New starts a master: with no option, an embedded nats-server on a free
// loopback port with a fresh token, and an in-process connection to it.
// An option that does not apply is refused with [ErrConfig]: WithServerID
// (for [Connect]); WithToken, WithUserInfo, WithCredentials and WithTLS
// without WithNATS or WithConn; WithServerLogging with either; WithNATS
// with WithConn. Close the master when done.
func New(ctx context.Context, opts ...Option) (*Master, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := o.checkNew(); err != nil {
		return nil, err
	}
	return start(ctx, o)
}

// start starts the master that o describes; New and Connect checked o.
func start(ctx context.Context, o options) (*Master, error) {
	if o.id == "" {
		o.id = wire.NewID("m")
	}
	// The shared memory of processes killed on this host before: nobody
	// will release it.
	shm.Sweep()
	if o.maxValue == 0 {
		o.maxValue = chunks.DefaultLimit
	}
	m := &Master{
		maxValue:   o.maxValue,
		id:         o.id,
		lease:      o.lease,
		childLease: o.child,
		interval:   o.interval,
		hbStop:     make(chan struct{}),
		hbDone:     make(chan struct{}),
		slaves:     make(map[string]*slave),
		reserved:   make(map[string]bool),
		closeDone:  make(chan struct{}),
		spawnJobs:  make(chan func()),
		spawnDone:  make(chan struct{}),
		closing:    make(chan struct{}),
	}
	name := "processional master " + m.id
	switch {
	case o.conn != nil:
		m.nc = o.conn
		if u := o.conn.ConnectedUrl(); u != "" {
			m.url = u
		}
		m.token, m.files = o.token, o.files
	case o.url == "":
		srv, err := embedded.Start(embedded.Options{Logging: o.logging})
		if err != nil {
			return nil, err
		}
		nc, err := srv.Connect(name, o.natsOpt...)
		if err != nil {
			srv.Shutdown()
			return nil, fmt.Errorf("%w: to the embedded server: %w", ErrConnect, err)
		}
		m.srv, m.nc, m.url, m.token = srv, nc, srv.URL(), srv.Token()
		m.ownNC = true
	default:
		creds, err := o.credentials().Options()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		all := append(append([]nats.Option{nats.Name(name)}, creds...), o.natsOpt...)
		if d, ok := ctx.Deadline(); ok {
			all = append(all, nats.Timeout(time.Until(d)))
		}
		all = append(m.connOptions(), all...) // prompt reconnects; the options given win
		nc, err := nats.Connect(o.url, all...)
		if err != nil {
			return nil, fmt.Errorf("%w: to %s: %w", ErrConnect, o.url, err)
		}
		m.nc, m.url, m.token, m.files = nc, o.url, o.token, o.files
		m.ownNC = true
	}
	m.reconnects.Store(m.nc.Stats().Reconnects) // a connection given may have reconnected before
	m.hbInbox = wire.HeartbeatReplySubject(m.id)
	sub, err := m.nc.Subscribe(m.hbInbox, m.onAck)
	if err != nil {
		if m.ownNC {
			m.nc.Close()
		}
		if m.srv != nil {
			m.srv.Shutdown()
		}
		return nil, fmt.Errorf("%w: heartbeat inbox: %w", ErrConnect, err)
	}
	m.hbSub = sub
	go m.heartbeats(m.hbStop, m.hbDone) // m's: Close stops and awaits it
	return m, nil
}

// spawner starts child processes from one OS thread that lives as long as
// the master: Linux sends a child its parent-death signal when the
// *thread* that forked it exits, so children must not be forked from
// whatever thread a goroutine happens to run on. It starts with the first
// spawn, so that a master that spawns nothing (one of Connect, say) locks
// no thread.
func (m *Master) spawner() {
	runtime.LockOSThread()
	// At Close the thread goes back to the runtime rather than end: the
	// workers that outlive the master, and whatever else was forked from
	// it, are not signalled for it.
	defer runtime.UnlockOSThread()
	defer close(m.spawnDone)
	for job := range m.spawnJobs {
		job()
	}
}

// onSpawner runs fn on the spawner thread and waits for it. The caller
// holds m.spawning, so the thread runs until fn is done.
func (m *Master) onSpawner(fn func()) {
	m.spawnOnce.Do(func() { go m.spawner() }) // m's: Close ends and awaits it
	done := make(chan struct{})
	m.spawnJobs <- func() { fn(); close(done) }
	<-done
}

// startSpawn counts a spawn in flight, or reports that the master is
// closed or already has a worker of that id.
func (m *Master) startSpawn(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("%w: master %s is closed", bus.ErrClosed, m.id)
	}
	if _, dup := m.slaves[id]; dup || m.reserved[id] {
		return fmt.Errorf("%w: master %s has a worker %s already", ErrConfig, m.id, id)
	}
	m.reserved[id] = true
	m.spawning.Add(1)
	return nil
}

// endSpawn ends what startSpawn began; the spawn has registered its slave
// by now, or failed.
func (m *Master) endSpawn(id string) {
	m.mu.Lock()
	delete(m.reserved, id)
	m.mu.Unlock()
	m.spawning.Done()
}

// ID is the master's id, as it appears in subjects.
func (m *Master) ID() string { return m.id }

// Conn is the master's NATS connection.
func (m *Master) Conn() *nats.Conn { return m.nc }

// URL is the NATS URL workers connect to.
func (m *Master) URL() string { return m.url }

// Token is the token workers present to the master's NATS server (empty
// when it needs none). Keep it as secret as the server's access.
func (m *Master) Token() string { return m.token }

// Close closes every worker the master spawned (as [Slave.Close] does:
// their queued calls finish first) but those it detached or made
// persistent, which it lets go of; then its connection, then the embedded
// server if it started one. Spawns in flight fail with
// [bus.ErrClosed]. It is idempotent.
func (m *Master) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		<-m.closeDone
		return nil
	}
	m.closed = true
	close(m.closing)
	m.mu.Unlock()
	m.spawning.Wait()
	m.mu.Lock()
	slaves := m.slaveListLocked()
	m.mu.Unlock()
	for _, s := range slaves {
		s.mu.Lock()
		s.release = nil // the master goes anyway: no reference to drop
		outlives := s.outlives
		s.mu.Unlock()
		if outlives {
			s.abandon()
		} else {
			s.close()
		}
	}
	m.awaitFlushers() // the calls they send fail, or are answered, with their slave's close
	close(m.hbStop)
	<-m.hbDone
	m.exportMu.Lock()
	exports := m.exports
	m.exportMu.Unlock()
	if exports != nil {
		exports.Close()
	}
	if m.ownNC {
		m.nc.Close()
	} else {
		m.hbSub.Unsubscribe()
	}
	if m.srv != nil {
		m.srv.Shutdown()
	}
	m.spawnOnce.Do(func() { close(m.spawnDone) }) // no spawner ever started
	close(m.spawnJobs)
	<-m.spawnDone
	close(m.closeDone)
	return nil
}

// closeForRelease closes m for its last slave's release: unless a Close
// runs already, which may be the one that closed that slave, and must not
// be waited for from inside it.
func (m *Master) closeForRelease() {
	if !m.isClosed() {
		m.Close()
	}
}

func (m *Master) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

func (m *Master) forget(s *slave) {
	m.mu.Lock()
	if m.slaves[s.id] == s {
		delete(m.slaves, s.id)
	}
	m.mu.Unlock()
}

// slaveListLocked returns the master's slaves, for a walk outside m.mu.
func (m *Master) slaveListLocked() []*slave {
	slaves := make([]*slave, 0, len(m.slaves))
	for _, s := range m.slaves {
		slaves = append(slaves, s)
	}
	return slaves
}
