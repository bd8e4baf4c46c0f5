// Package embedded starts and stops an in-process nats-server for a master
// that was given no NATS URL.
//
// The server listens on loopback only, on a free port, and requires a
// random per-run token of every client: the master hands it to the workers
// it spawns through their environment. The master itself connects without
// a socket (nats.InProcessServer).
package embedded

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"
)

// ErrStart wraps every failure to start the server.
var ErrStart = errors.New("embedded: cannot start nats-server")

// Options configure [Start]. The zero value is a quiet server on a free
// loopback port with a fresh random token.
type Options struct {
	// Host is the address to listen on; empty means 127.0.0.1. Any other
	// address is logged through slog, as it exposes the server beyond
	// this machine.
	Host string
	// Port is the port to listen on; 0 means a free port.
	Port int
	// Token is required of every client; empty means a fresh random token,
	// unless ConfigFile authenticates clients its own way (users, nkeys,
	// an operator, or a token of its own): then no token is made, and
	// giving one is an error. A config file's token that is a bcrypt hash
	// needs the plain token here, which must match it: the clients this
	// process starts present it.
	Token string
	// Logging turns the server's log on (to stderr). The environment
	// variable NATS_LOGGING=1 does too.
	Logging bool
	// MaxPayload is the largest message the server accepts; 0 means the
	// nats-server default (1 MiB).
	MaxPayload int32
	// StartTimeout bounds the wait for the server to accept connections;
	// 0 means 10 s.
	StartTimeout time.Duration
	// NoTCP opens no TCP listener: clients connect in process only (see
	// [Server.Connect] and the server's InProcessConn).
	NoTCP bool
	// Name names the server in a cluster; empty means a random name.
	Name string
	// Cluster, if its Port is set (-1 for a free one), makes the server a
	// member of a NATS cluster: it listens for routes there and connects
	// to the Routes given.
	Cluster Cluster
	// TLS, if set, makes clients speak TLS (in-process connections
	// excepted). A config whose ClientAuth is
	// tls.RequireAndVerifyClientCert verifies the clients' certificates
	// too: see [ServerTLS].
	TLS *tls.Config
	// ConfigFile, if set, is a nats-server configuration file read first:
	// its users and their permissions, nkeys, operator and accounts (JWT),
	// TLS, limits. The other options given win over its settings. A file
	// that sets no authentication of its own gets the token, as the
	// server always requires one; one that listens beyond loopback is
	// logged as Host is. A cluster's routes need credentials: the file's
	// cluster authorization, or else the token (see [RouteUser]).
	ConfigFile string
}

// isBcrypt reports whether s is a bcrypt hash, as nats-server recognises
// one: $2a$, $2b$, $2x$ or $2y$, then two digits and a $. (No regexp: a
// package-level one is compiled at every start of every process.)
func isBcrypt(s string) bool {
	return len(s) >= 7 && s[:2] == "$2" && strings.IndexByte("abxy", s[2]) >= 0 && s[3] == '$' &&
		s[4] >= '0' && s[4] <= '9' && s[5] >= '0' && s[5] <= '9' && s[6] == '$'
}

// RouteUser is the user the members of a cluster started with a token
// present to each other's route port, with the token as its password:
// every member of one cluster must have the same token.
const RouteUser = "processional-route"

// Cluster configures the routes between the servers of a NATS cluster.
type Cluster struct {
	Name   string   // the cluster's name, the same on every member
	Host   string   // the address to listen on for routes; empty means Options.Host
	Port   int      // the port for routes: 0 for none (no cluster), -1 for a free one
	Routes []string // the route URLs of the other members, nats://host:port
}

// Server is a running in-process nats-server. It is safe for concurrent use.
type Server struct {
	srv   *server.Server
	token string
	once  sync.Once
}

// Start starts a server and returns once it accepts connections.
func Start(o Options) (*Server, error) {
	host, port := o.Host, o.Port // as given, to win over a config file
	tokenGiven := o.Token != ""
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Token == "" {
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("%w: token: %v", ErrStart, err)
		}
		o.Token = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 10 * time.Second
	}
	if o.Port == 0 {
		o.Port = server.RANDOM_PORT
	}
	if o.Port < -1 || o.Port > 65535 {
		return nil, fmt.Errorf("%w: port %d out of range", ErrStart, o.Port)
	}
	logging := o.Logging || os.Getenv("NATS_LOGGING") != ""
	name := o.Name
	if name == "" {
		name = "processional-embedded"
		if o.Cluster.Port != 0 { // names must differ within a cluster
			var b [6]byte
			rand.Read(b[:])
			name += "-" + base64.RawURLEncoding.EncodeToString(b[:])
		}
	}
	opts := &server.Options{}
	if o.ConfigFile != "" {
		var err error
		if opts, err = server.ProcessConfigFile(o.ConfigFile); err != nil {
			return nil, fmt.Errorf("%w: config file: %v", ErrStart, err)
		}
	}
	if o.Name != "" || opts.ServerName == "" {
		opts.ServerName = name
	}
	if host != "" || opts.Host == "" {
		opts.Host = o.Host
	}
	if port != 0 || opts.Port == 0 {
		opts.Port = o.Port
	}
	switch {
	case isBcrypt(opts.Authorization):
		// The server compares what clients present with the hash; the
		// clients this process starts need the plain token.
		switch {
		case !tokenGiven:
			return nil, fmt.Errorf("%w: the config file's token is bcrypt-hashed: give the plain token too, for the clients this process starts", ErrStart)
		case bcrypt.CompareHashAndPassword([]byte(opts.Authorization), []byte(o.Token)) != nil:
			return nil, fmt.Errorf("%w: the token given does not match the config file's bcrypt-hashed token", ErrStart)
		}
	case tokenGiven && (opts.Authorization != "" || hasAuth(opts)):
		return nil, fmt.Errorf("%w: both a token and the config file's own authentication: give one", ErrStart)
	case opts.Authorization != "":
		o.Token = opts.Authorization
	case hasAuth(opts):
		o.Token = "" // the file's users, nkeys or operator decide
	default:
		opts.Authorization = o.Token
	}
	if o.MaxPayload != 0 {
		opts.MaxPayload = o.MaxPayload
	}
	opts.NoSigs = true
	opts.NoLog = !logging
	if opts.MaxPending == 0 {
		// Many calls may be pipelined: let a busy client buffer more than
		// the default before the server calls it slow.
		opts.MaxPending = 256 << 20
	}
	opts.DontListen = o.NoTCP
	if o.TLS != nil {
		opts.TLS = true
		opts.TLSConfig = o.TLS
		opts.TLSVerify = o.TLS.ClientAuth == tls.RequireAndVerifyClientCert
		opts.TLSTimeout = 2
	}
	if o.Cluster.Port != 0 {
		opts.Cluster.Name = o.Cluster.Name
		opts.Cluster.Host = o.Cluster.Host
		if opts.Cluster.Host == "" {
			opts.Cluster.Host = opts.Host // the client address, the config file's if it set one
		}
		opts.Cluster.Port = o.Cluster.Port
		for _, r := range o.Cluster.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("%w: route %q: %v", ErrStart, r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	if opts.Cluster.Port != 0 {
		// Routes carry every client's messages: a route port open to all
		// would let anyone in through a server of their own.
		if opts.Cluster.Username == "" {
			if o.Token == "" {
				return nil, fmt.Errorf("%w: a cluster member needs route credentials: give the config file's cluster an authorization block", ErrStart)
			}
			opts.Cluster.Username, opts.Cluster.Password = RouteUser, o.Token
		}
		for _, u := range opts.Routes { // a route URL with no user of its own presents the cluster's
			if u.User == nil {
				u.User = url.UserPassword(opts.Cluster.Username, opts.Cluster.Password)
			}
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStart, err)
	}
	if logging {
		srv.ConfigureLogger()
	}
	if ip := net.ParseIP(opts.Host); !o.NoTCP && (ip == nil || !ip.IsLoopback()) {
		slog.Warn("processional: the embedded NATS server listens beyond loopback", "host", opts.Host)
	}
	go srv.Start()
	if !srv.ReadyForConnections(o.StartTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("%w: not ready within %s on %s", ErrStart, o.StartTimeout, net.JoinHostPort(o.Host, strconv.Itoa(o.Port)))
	}
	return &Server{srv: srv, token: o.Token}, nil
}

// hasAuth reports whether opts authenticate clients by other means than a
// token: users, nkeys, an operator's JWTs, or an auth callout.
func hasAuth(opts *server.Options) bool {
	return opts.Username != "" || len(opts.Users) > 0 || len(opts.Nkeys) > 0 ||
		len(opts.TrustedOperators) > 0 || len(opts.TrustedKeys) > 0 || opts.AuthCallout != nil
}

// ServerTLS loads a TLS configuration for a server: its certificate and
// key (PEM files), and, if caFile is not empty, the certificate authority
// whose certificates clients must present.
func ServerTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: TLS certificate %s and key %s: %v", ErrStart, certFile, keyFile, err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: TLS certificate authority: %v", ErrStart, err)
		}
		c.ClientCAs = x509.NewCertPool()
		if !c.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: TLS certificate authority %s: no PEM certificate in it", ErrStart, caFile)
		}
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// ClusterURL is the URL other members of the server's cluster route to,
// or "" when it is in no cluster.
func (s *Server) ClusterURL() string {
	if a := s.srv.ClusterAddr(); a != nil {
		return "nats://" + a.String()
	}
	return ""
}

// URL is the server's client URL, for workers in other processes.
func (s *Server) URL() string { return s.srv.ClientURL() }

// Token is the token every client must present, or "" when the
// configuration file's users, nkeys or operator authenticate them instead.
func (s *Server) Token() string { return s.token }

// NATS returns the underlying nats-server.
func (s *Server) NATS() *server.Server { return s.srv }

// Connect opens an in-process connection (no socket) to the server, with
// the token, and the given extra options.
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{nats.InProcessServer(s.srv), nats.Token(s.token), nats.Name(name)}, opts...)
	return nats.Connect("", all...)
}

// Shutdown stops the server and waits until everything it started has
// stopped. It is idempotent and safe for concurrent use.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		s.srv.Shutdown()
	})
	s.srv.WaitForShutdown()
}
