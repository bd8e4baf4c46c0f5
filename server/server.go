package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/embedded"
	"github.com/processional/processional/internal/sockets"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/worker"
)

// DefaultID is the worker id of a server unless told otherwise: masters
// connect to proc.server.…
const DefaultID = wire.DefaultServerID

// ErrConfig wraps every invalid option given to [Start].
var ErrConfig = errors.New("server: invalid configuration")

// Options configure [Start]. The zero value is a server
// listening on a free loopback TCP port with a random token.
type Options struct {
	// Listen is the TCP address ("127.0.0.1:4222") to listen on; empty
	// means a free loopback port, "-" none (then Socket must be set).
	Listen string
	// Socket, if set, is the path of a Unix socket (mode 0600) on which the
	// server speaks NATS too.
	Socket string
	// Token is required of every client; empty means a random one.
	Token string
	// ID is the server's worker id; empty means [DefaultID].
	ID string
	// Logging turns the NATS server's log on.
	Logging bool
	// TLS, if set, makes TCP clients speak TLS (see embedded.ServerTLS).
	TLS *tls.Config
	// ConfigFile, if set, is a nats-server configuration file: users and
	// their permissions, nkeys, operator JWTs (see embedded.Options).
	ConfigFile string
	// Conn are options of the server's own in-process connection: the
	// credentials its worker presents when ConfigFile authenticates by
	// users, nkeys or JWTs (nats.UserInfo, nats.UserCredentials).
	Conn []nats.Option
}

// Server is a persistent worker with its own embedded NATS server, for
// many masters at once: each connects with master.Connect, holds its own
// lease and its own order of calls, and one master dying or closing
// touches no other. It outlives them all, until [Server.Close].
type Server struct {
	srv    *embedded.Server
	w      *worker.Worker
	nc     *nats.Conn   // the worker's in-process connection
	socket net.Listener // nil without a socket
	path   string

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{} // bridged socket connections, both ends
	wg     sync.WaitGroup        // the accept loop and the bridges
	once   sync.Once
}

// Start starts a server and returns once it serves.
func Start(o Options) (*Server, error) {
	if o.ID == "" {
		o.ID = DefaultID
	}
	if err := wire.CheckID("server id", o.ID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	eo := embedded.Options{Token: o.Token, Logging: o.Logging, TLS: o.TLS, ConfigFile: o.ConfigFile}
	switch o.Listen {
	case "":
	case "-":
		if o.Socket == "" {
			return nil, fmt.Errorf("%w: no TCP listener and no socket: nobody could connect", ErrConfig)
		}
		eo.NoTCP = true
	default:
		host, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("%w: listen address %q: %v", ErrConfig, o.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("%w: listen address %q: bad port", ErrConfig, o.Listen)
		}
		eo.Host, eo.Port = host, p
	}
	srv, err := embedded.Start(eo)
	if err != nil {
		return nil, err
	}
	s := &Server{srv: srv, conns: make(map[net.Conn]struct{})}
	nc, err := srv.Connect("processional server "+o.ID, o.Conn...)
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("server %s: connect: %w", o.ID, err)
	}
	w, err := worker.Serve(nc, worker.WithID(o.ID))
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, err
	}
	s.w, s.nc = w, nc
	if o.Socket != "" {
		if err := s.listenSocket(o.Socket); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// listenSocket bridges the connections accepted on a Unix socket to the
// NATS server's in-process connections: nats-server has no Unix-socket
// listener of its own.
func (s *Server) listenSocket(path string) error {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("%w: %s exists and is not a socket", ErrConfig, path)
		}
		// Another server's socket, live or stale? Only a stale one (no
		// listener: connection refused) goes.
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			return fmt.Errorf("%w: socket %s is in use by a live server", ErrConfig, path)
		}
		if !sockets.Refused(err) {
			return fmt.Errorf("%w: socket %s exists and cannot be checked: %v", ErrConfig, path, err)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if sockets.NoUnix(err) {
		return fmt.Errorf("%w: socket %s: %w: Unix sockets on %s: %v", ErrConfig, path, errors.ErrUnsupported, runtime.GOOS, err)
	}
	if err != nil {
		return fmt.Errorf("%w: socket %s: %v", ErrConfig, path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("%w: socket %s: %v", ErrConfig, path, err)
	}
	s.socket, s.path = l, path
	s.wg.Add(1)
	go s.accept()
	return nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for delay := time.Duration(0); ; {
		c, err := s.socket.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // out of file descriptors, say: back off, go on
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		in, err := s.srv.NATS().InProcessConn()
		if err != nil {
			c.Close()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			in.Close()
			return
		}
		s.conns[c], s.conns[in] = struct{}{}, struct{}{}
		s.wg.Add(2)
		s.mu.Unlock()
		go s.pipe(c, in)
		go s.pipe(in, c)
	}
}

// pipe copies src to dst, then closes both, and so the other direction.
func (s *Server) pipe(dst, src net.Conn) {
	defer s.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	s.mu.Lock()
	delete(s.conns, dst)
	delete(s.conns, src)
	s.mu.Unlock()
}

// drainClients waits, at most d, until the NATS server has written out
// what it holds for its clients: the last replies must reach their masters
// before the server shuts down.
func (s *Server) drainClients(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		cz, err := s.srv.NATS().Connz(nil)
		if err != nil {
			return
		}
		pending := 0
		for _, c := range cz.Conns {
			pending += c.Pending
		}
		if pending == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ID is the server's worker id.
func (s *Server) ID() string { return s.w.ID() }

// URL is the server's NATS URL for TCP clients.
func (s *Server) URL() string { return s.srv.URL() }

// Token is the token clients present.
func (s *Server) Token() string { return s.srv.Token() }

// Socket is the path of the server's Unix socket, or "".
func (s *Server) Socket() string { return s.path }

// Addr is the address a master gives master.Connect: the socket as
// unix://PATH when there is one, else the TCP URL.
func (s *Server) Addr() string {
	if s.path != "" {
		return (&url.URL{Scheme: "unix", Path: s.path}).String()
	}
	return s.URL()
}

// Worker is the server's worker.
func (s *Server) Worker() *worker.Worker { return s.w }

// Stopping is closed when a client asked the server to stop (the "stop"
// control verb); the caller then calls Close.
func (s *Server) Stopping() <-chan struct{} { return s.w.Stopping() }

// Close stops taking calls, lets the running ones finish and reply, then
// stops the socket bridges and the NATS server. It is idempotent.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		if s.w != nil {
			err = s.w.Close()
			s.nc.Flush() // the server has every reply of the worker's now
			s.nc.Close()
			s.drainClients(time.Second)
		}
		if s.socket != nil {
			s.socket.Close() // removes the socket file, ours
		}
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		s.srv.Shutdown()
	})
	return err
}
