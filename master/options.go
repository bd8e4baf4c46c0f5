package master

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/internal/natsauth"
	"github.com/processional/processional/internal/wire"
)

// Option configures [New] and [Connect]. An option refuses a bad value,
// and New or Connect an option that does not apply where it was given,
// with an error wrapping [ErrConfig] that names it.
type Option func(*options) error

type options struct {
	url      string
	token    string
	logging  bool
	natsOpt  []nats.Option
	lease    time.Duration
	interval time.Duration
	child    time.Duration // the lease of spawned workers; 0: see WithLease
	serverID string
	maxValue int64
	conn     *nats.Conn      // WithConn
	files    natsauth.Files  // WithCredentials, WithTLS: presented, and handed to workers
	id       string          // the master's id; random when empty
	given    map[string]bool // the options given whose use depends on the others, by name
}

// note records that option name was given, for checkNew and checkConnect.
func (o *options) note(name string) {
	if o.given == nil {
		o.given = make(map[string]bool)
	}
	o.given[name] = true
}

// applyOptions returns the defaults with opts applied in order.
func applyOptions(opts []Option) (options, error) {
	o := options{lease: DefaultLease, interval: DefaultLease / 4}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return options{}, err
		}
	}
	if o.child == 0 {
		o.child = DefaultChildLease
		if o.given["WithLease"] {
			o.child = o.lease
		}
	}
	return o, nil
}

// checkNew refuses, naming it, an option New would ignore.
func (o *options) checkNew() error {
	if o.given["WithServerID"] {
		return fmt.Errorf("%w: WithServerID is for Connect: New names no worker to reach", ErrConfig)
	}
	if o.given["WithConn"] && o.given["WithNATS"] {
		return fmt.Errorf("%w: WithConn and WithNATS together: the master uses one connection, give one", ErrConfig)
	}
	if o.given["WithConn"] || o.given["WithNATS"] {
		if o.given["WithServerLogging"] {
			return fmt.Errorf("%w: WithServerLogging with WithConn or WithNATS: the master starts no embedded server to log", ErrConfig)
		}
		return nil
	}
	for _, name := range []string{"WithToken", "WithUserInfo", "WithCredentials", "WithTLS"} {
		if o.given[name] {
			return fmt.Errorf("%w: %s without WithNATS or WithConn: the embedded server makes its own token", ErrConfig, name)
		}
	}
	return nil
}

// checkConnect refuses, naming it, an option Connect would ignore.
func (o *options) checkConnect() error {
	for _, c := range []struct{ name, why string }{
		{"WithNATS", "Connect's address names the server"},
		{"WithConn", "Connect makes a connection of its own"},
		{"WithServerLogging", "Connect starts no embedded server to log"},
	} {
		if o.given[c.name] {
			return fmt.Errorf("%w: %s does not apply to Connect: %s", ErrConfig, c.name, c.why)
		}
	}
	return nil
}

// WithConn makes the master use nc, a connection the caller made and
// closes after the master's Close, instead of a connection of its own.
// Workers it spawns connect to the server nc is connected to. A reconnect
// of nc fails the calls in flight as one of the master's own connection
// does (the master notices it at its next heartbeat); nc's reconnect
// options stay the caller's.
func WithConn(nc *nats.Conn) Option {
	return func(o *options) error {
		if nc == nil {
			return fmt.Errorf("%w: nil NATS connection", ErrConfig)
		}
		o.conn = nc
		o.note("WithConn")
		return nil
	}
}

// WithMaxValue sets the largest call or result, in bytes, the master
// sends or takes: a larger call fails with [bus.ErrTooBig], giving its size
// and the limit, before anything is sent. Values past the NATS server's
// max payload travel in chunks, with flow control. The default is 1 GiB;
// spawned workers get the same limit.
func WithMaxValue(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("%w: max value %d: want a positive size", ErrConfig, n)
		}
		o.maxValue = n
		return nil
	}
}

// withID sets the master's id: a worker's client master takes the
// worker's id, under which it holds references.
func withID(id string) Option {
	return func(o *options) error {
		if err := wire.CheckID("master id", id); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		o.id = id
		return nil
	}
}

// WithNATS connects the master to the NATS server at url instead of
// starting an embedded one. The master presents the credentials given
// with [WithToken], [WithUserInfo], [WithCredentials] or [WithTLS] (or in
// url, as nats://user:password@host:4222), and hands them to the workers
// it spawns. [Connect] refuses it: its address names the server.
func WithNATS(url string) Option {
	return func(o *options) error {
		if url == "" {
			return fmt.Errorf("%w: empty NATS URL", ErrConfig)
		}
		o.url = url
		o.note("WithNATS")
		return nil
	}
}

// WithToken sets the token the master presents to its NATS server
// ([WithNATS], [Connect]) and hands to the workers it spawns; with
// [WithConn], whose token the master cannot read, it is only handed to
// the workers. [New] refuses it without WithNATS or WithConn: the
// embedded server makes its own token.
func WithToken(token string) Option {
	return func(o *options) error {
		o.token = token
		o.note("WithToken")
		return nil
	}
}

// WithServerID names the worker id of the server [Connect] connects to;
// the default is server.DefaultID, "server". [New] refuses it: it names
// no worker to reach.
func WithServerID(id string) Option {
	return func(o *options) error {
		if err := wire.CheckID("server id", id); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		o.serverID = id
		o.note("WithServerID")
		return nil
	}
}

// WithServerLogging turns the embedded server's log on. It is refused
// with [WithNATS] or [WithConn], and by [Connect]: none of them starts an
// embedded server.
func WithServerLogging() Option {
	return func(o *options) error {
		o.logging = true
		o.note("WithServerLogging")
		return nil
	}
}
