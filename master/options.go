package master

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/internal/natsauth"
	"github.com/processional/processional/internal/wire"
)

// Option configures [New]. An option refuses a bad value with an error
// wrapping [ErrConfig].
type Option func(*options) error

type options struct {
	url      string
	token    string
	logging  bool
	natsOpt  []nats.Option
	lease    time.Duration
	interval time.Duration
	serverID string
	maxValue int64
	conn     *nats.Conn     // WithConn
	files    natsauth.Files // WithCredentials, WithTLS: presented, and handed to workers
	id       string         // the master's id; random when empty
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
// starting an embedded one; token, if not empty, is presented to it and
// handed to spawned workers.
func WithNATS(url, token string) Option {
	return func(o *options) error {
		if url == "" {
			return fmt.Errorf("%w: empty NATS URL", ErrConfig)
		}
		o.url, o.token = url, token
		return nil
	}
}

// WithToken sets the token presented to the NATS server of [Connect].
func WithToken(token string) Option {
	return func(o *options) error { o.token = token; return nil }
}

// WithServerID names the worker id of the server [Connect] connects to;
// the default is server.DefaultID, "server".
func WithServerID(id string) Option {
	return func(o *options) error {
		if err := wire.CheckID("server id", id); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		o.serverID = id
		return nil
	}
}

// WithServerLogging turns the embedded server's log on.
func WithServerLogging() Option {
	return func(o *options) error { o.logging = true; return nil }
}
