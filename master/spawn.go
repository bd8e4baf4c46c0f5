package master

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/natsauth"
	"github.com/processional/processional/internal/wire"
)

// SpawnOption configures [Master.Spawn]. An option refuses a bad value
// with an error wrapping [ErrConfig].
type SpawnOption func(*spawnOptions) error

type spawnOptions struct {
	binary       string
	args         []string
	env          []string
	id           string
	startTimeout time.Duration
	stdout       io.Writer
	stderr       io.Writer
	pool         string
	maxPending   int
	auth         *natsauth.Files // what the worker presents instead of the master's user or creds
}

// InPool makes the spawned worker a member of pool name (see
// [Master.Pool]): besides being this master's Slave, it takes the pool's
// calls.
func InPool(name string) SpawnOption {
	return func(o *spawnOptions) error {
		if !wire.ValidID(name) {
			return fmt.Errorf("%w: pool name %q: want 1 to 64 letters, digits, '-' or '_'", ErrConfig, name)
		}
		o.pool = name
		return nil
	}
}

// WithMaxPending sets how many calls the spawned worker holds at once,
// queued or running: a call past it fails at once with
// [bus.ErrOverloaded], instead of waiting behind a backlog that grows
// without bound. The default is worker.DefaultMaxPending.
func WithMaxPending(n int) SpawnOption {
	return func(o *spawnOptions) error {
		if n <= 0 {
			return fmt.Errorf("%w: max pending %d: want a positive count", ErrConfig, n)
		}
		o.maxPending = n
		return nil
	}
}

// WithWorkerUserInfo makes the spawned worker present this user and
// password to the NATS server instead of the master's credentials: on a
// server whose permissions give masters and workers users of their own
// (see deploy/nats.conf), a master need not hold a worker's rights to
// spawn one.
func WithWorkerUserInfo(user, password string) SpawnOption {
	return func(o *spawnOptions) error {
		if user == "" {
			return fmt.Errorf("%w: empty NATS user name for the worker", ErrConfig)
		}
		o.auth = &natsauth.Files{User: user, Password: password}
		return nil
	}
}

// WithWorkerCredentials makes the spawned worker present this NATS
// credentials file instead of the master's credentials (see
// [WithWorkerUserInfo]).
func WithWorkerCredentials(file string) SpawnOption {
	return func(o *spawnOptions) error {
		if file == "" {
			return fmt.Errorf("%w: empty credentials file name for the worker", ErrConfig)
		}
		o.auth = &natsauth.Files{Creds: file}
		return nil
	}
}

// WithBinary runs the worker binary at path with args instead of
// re-executing the current binary. Its main must call worker.Main first.
func WithBinary(path string, args ...string) SpawnOption {
	return func(o *spawnOptions) error {
		if path == "" {
			return fmt.Errorf("%w: empty worker binary path", ErrConfig)
		}
		o.binary, o.args = path, args
		return nil
	}
}

// WithEnv adds entries ("KEY=value") to the worker's environment.
func WithEnv(env ...string) SpawnOption {
	return func(o *spawnOptions) error {
		for _, e := range env {
			if !strings.Contains(e, "=") {
				return fmt.Errorf("%w: environment entry %q has no '='", ErrConfig, e)
			}
		}
		o.env = append(o.env, env...)
		return nil
	}
}

// WithID sets the worker's id, the token its subjects start with
// (proc.<id>.…). The default is a random "w-…" id.
func WithID(id string) SpawnOption {
	return func(o *spawnOptions) error {
		if !wire.ValidID(id) {
			return fmt.Errorf("%w: worker id %q: want 1 to 64 letters, digits, '-' or '_'", ErrConfig, id)
		}
		o.id = id
		return nil
	}
}

// WithStartTimeout bounds the wait for the worker's hello; the default is
// 30 s.
func WithStartTimeout(d time.Duration) SpawnOption {
	return func(o *spawnOptions) error {
		if d <= 0 {
			return fmt.Errorf("%w: start timeout %s is not positive", ErrConfig, d)
		}
		o.startTimeout = d
		return nil
	}
}

// WithOutput sends the worker's stdout and stderr to the given writers
// (nil discards), each line prefixed with the worker's id. The default is
// the master's own stdout and stderr.
func WithOutput(stdout, stderr io.Writer) SpawnOption {
	return func(o *spawnOptions) error {
		o.stdout, o.stderr = orDiscard(stdout), orDiscard(stderr)
		return nil
	}
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// Spawn starts a worker process and returns once it serves: by default the
// current binary re-executed, whose main must begin with
//
//	if worker.Main() { return }
//
// The worker joins the master's NATS server with the master's token and
// says hello; a process that exits or stays silent past the start timeout
// is killed, and the error (wrapping [ErrNoHello]) says to call
// worker.Main. The worker runs in its own process group; if the master's
// process dies, the kernel signals the worker, which kills its group. Its
// output reaches the master's, each line prefixed with its id.
func (m *Master) Spawn(ctx context.Context, opts ...SpawnOption) (*Slave, error) {
	refuseNestedSpawn()
	ctx = orBackground(ctx)
	o := spawnOptions{startTimeout: 30 * time.Second, stdout: os.Stdout, stderr: os.Stderr}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("%w: find the current binary: %v", ErrSpawn, err)
		}
		o.binary, o.args = exe, os.Args[1:]
	}
	if o.id == "" {
		o.id = wire.NewID("w")
	}
	if err := m.startSpawn(o.id); err != nil {
		return nil, err
	}
	defer m.endSpawn(o.id)

	s := newSlave(m, o.id)
	hello := make(chan *nats.Msg, 1)
	hsub, err := m.nc.ChanSubscribe(wire.HelloSubject(m.id, o.id), hello)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSpawn, err)
	}
	defer hsub.Unsubscribe()
	if err := s.subscribe(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSpawn, err)
	}
	if err := m.nc.Flush(); err != nil {
		s.unsubscribe()
		return nil, fmt.Errorf("%w: %v", ErrSpawn, err)
	}

	cfg := wire.WorkerConfig{URL: m.url, Token: m.token, Worker: o.id, Master: m.id,
		Hello: wire.HelloSubject(m.id, o.id), Version: wire.Version(), PID: os.Getpid(), MaxValue: m.maxValue, Pool: o.pool, MaxPending: o.maxPending,
		User: m.files.User, Password: m.files.Password, Creds: m.files.Creds, TLSCert: m.files.Cert, TLSKey: m.files.Key, TLSCA: m.files.CA}
	if o.auth != nil {
		cfg.User, cfg.Password, cfg.Creds = o.auth.User, o.auth.Password, o.auth.Creds
	}
	cmd := exec.Command(o.binary, o.args...)
	cmd.Env = append(append(os.Environ(), o.env...), cfg.Env())
	s.stdout = newPrefixWriter(o.stdout, "["+o.id+"] ")
	s.stderr = newPrefixWriter(o.stderr, "["+o.id+"] ")
	proc, outW, errW, err := newProcess()
	if err != nil {
		s.unsubscribe()
		return nil, fmt.Errorf("%w: pipes: %v", ErrSpawn, err)
	}
	// *os.File outputs: exec starts no copying goroutine of its own, and
	// the master can stop copying when it lets go of the worker.
	cmd.Stdout, cmd.Stderr = outW, errW
	// A signal worker.Main catches, not SIGKILL, on the master's death: the
	// worker then kills its whole process group, so that its own children
	// go too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: wire.ParentDeathSignal}
	var startErr error
	m.onSpawner(func() { startErr = cmd.Start() })
	outW.Close() // the child's now
	errW.Close()
	if startErr != nil {
		proc.closeOutput()
		proc.letGo()
		proc.letGoR.Close()
		s.unsubscribe()
		return nil, fmt.Errorf("%w: %s: %v", ErrSpawn, o.binary, startErr)
	}
	proc.copyOutput(s.stdout, s.stderr)
	s.cmd, s.proc = cmd, proc
	go s.reap()

	timer := time.NewTimer(o.startTimeout)
	defer timer.Stop()
	var fail error
	select {
	case msg := <-hello:
		var h wire.Hello
		if err := codec.Unmarshal(msg.Data, &h); err != nil {
			fail = fmt.Errorf("%w: worker %s said an undecodable hello: %v", bus.ErrBadPayload, o.id, err)
		} else if err := h.Check(); err != nil {
			fail = err
		} else {
			s.sameMemory(&h)
		}
	case <-s.exited:
		if why := s.workerComplaint(); why != "" {
			// It did call worker.Main, which said why it could not serve.
			fail = fmt.Errorf("%w: worker %s (%s) exited (%s) before saying hello: %s", ErrSpawn, o.id, o.binary, s.exitStatus(), why)
		} else {
			fail = fmt.Errorf("%w: worker %s (%s) exited (%s) before saying hello: its main must call worker.Main() first thing%s",
				ErrNoHello, o.id, o.binary, s.exitStatus(), s.lastOutput())
		}
	case <-timer.C:
		if s.deniedSubjects() {
			fail = fmt.Errorf("%w: worker %s (%s) said no hello within %s: the NATS server denied it a worker's subjects; give it a worker's user (WithWorkerUserInfo, WithWorkerCredentials)%s",
				ErrSpawn, o.id, o.binary, o.startTimeout, s.lastOutput())
			break
		}
		fail = fmt.Errorf("%w: worker %s (%s) said no hello within %s: its main must call worker.Main() first thing%s",
			ErrNoHello, o.id, o.binary, o.startTimeout, s.lastOutput())
	case <-ctx.Done():
		fail = fmt.Errorf("%w: worker %s: %w", ErrSpawn, o.id, ctx.Err())
	case <-m.closing:
	}
	select {
	case <-m.closing:
		fail = fmt.Errorf("%w: master %s closed during the spawn of worker %s", bus.ErrClosed, m.id, o.id)
	default:
	}
	if fail != nil {
		s.Terminate()
		return nil, fail
	}
	// A lease from the start, rather than after the first tick: a worker
	// holding a live lease rides out a NATS outage, one without gives up.
	// Should this one not go, the next tick's will.
	m.firstBeat(s.id)
	s.lastAck.Store(time.Now().UnixNano()) // the hello counts as the first answer
	m.mu.Lock()
	m.slaves[s.id] = s
	m.mu.Unlock()
	return s.handle(), nil
}

// refuseNestedSpawn stops a process that was spawned as a worker but
// whose main did not call worker.Main: left to go on, it would spawn
// itself again and again.
func refuseNestedSpawn() {
	if _, ok := os.LookupEnv(wire.EnvWorker); ok {
		fmt.Fprintf(os.Stderr, "processional: this process was spawned as a worker, but its main did not call worker.Main() first thing: refusing to spawn a worker of its own\n")
		os.Exit(3)
	}
}

// prefixWriter writes whole lines to w, each prefixed, and keeps the last
// few for error messages. It is what os/exec copies a child's output into.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	part   []byte
	last   []string
}

func newPrefixWriter(w io.Writer, prefix string) *prefixWriter {
	return &prefixWriter{w: w, prefix: prefix}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.part = append(p.part, b...)
			break
		}
		line := append(p.part, b[:i]...)
		p.part = nil
		p.emit(line)
		b = b[i+1:]
	}
	return n, nil
}

func (p *prefixWriter) emit(line []byte) {
	out := make([]byte, 0, len(p.prefix)+len(line)+1)
	out = append(append(append(out, p.prefix...), line...), '\n')
	p.w.Write(out)
	if len(p.last) == 5 {
		p.last = p.last[1:]
	}
	p.last = append(p.last, string(line))
}

// flush writes a last line that had no newline.
func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.part) > 0 {
		p.emit(p.part)
		p.part = nil
	}
}

// tail returns the last lines written.
func (p *prefixWriter) tail() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.last...)
}

// workerComplaint returns the error line worker.Main printed before
// giving up, if any: the process did call worker.Main.
func (s *slave) workerComplaint() string {
	for _, line := range s.stderr.tail() {
		if strings.HasPrefix(line, "processional worker: ") {
			return strings.TrimPrefix(line, "processional worker: ")
		}
	}
	return ""
}

// deniedSubjects reports whether the worker said that the NATS server
// refused it a subscription or a publication.
func (s *slave) deniedSubjects() bool {
	for _, line := range s.stderr.tail() {
		if strings.Contains(line, "ermissions violation") {
			return true
		}
	}
	return false
}

// lastOutput quotes the worker's last lines of stderr and stdout, for an
// error message.
func (s *slave) lastOutput() string {
	lines := append(s.stderr.tail(), s.stdout.tail()...)
	if len(lines) == 0 {
		return ""
	}
	return "; its last output: " + strings.Join(lines, " | ")
}
