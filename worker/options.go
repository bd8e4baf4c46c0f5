package worker

import (
	"errors"
	"fmt"

	"github.com/processional/processional/internal/serve"
	"github.com/processional/processional/internal/wire"
)

// ErrConfig wraps every invalid option given to [Serve].
var ErrConfig = errors.New("worker: invalid configuration")

// Option configures [Serve]. An option refuses a bad value with an error
// wrapping [ErrConfig].
type Option func(*options) error

type options = serve.Config

// DefaultMaxPending is the number of calls a worker holds, accepted and
// not finished (queued or running), before it refuses more with
// [bus.ErrOverloaded]; see [WithMaxPending]. It leaves room for a master
// that pipelines a hundred thousand calls at once.
const DefaultMaxPending = serve.DefaultMaxPending

// WithMaxPending sets how many calls the worker holds at once, accepted
// and not finished (queued or running, blocking and concurrent together):
// a call past that is answered at once with [bus.ErrOverloaded], naming
// the worker, the count and the limit, instead of being queued without
// bound. The default is [DefaultMaxPending].
func WithMaxPending(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("%w: max pending %d: want a positive count", ErrConfig, n)
		}
		o.MaxPending = int64(n)
		return nil
	}
}

// WithPool makes the worker a member of pool name: masters find it with
// master.Pool and share their calls among the members; a JSON call on
// proc.pool.<name>.json.<function> goes to one member (a NATS queue group).
func WithPool(name string) Option {
	return func(o *options) error {
		if err := wire.CheckID("pool name", name); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		o.Pool = name
		return nil
	}
}

// WithMaxValue sets the largest call or result, in bytes, the worker takes
// or sends: larger ones fail with [bus.ErrTooBig]. Values past the NATS
// server's max payload travel in chunks. The default is 1 GiB.
func WithMaxValue(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("%w: max value %d: want a positive size", ErrConfig, n)
		}
		o.MaxValue = uint64(n)
		return nil
	}
}

// WithID sets the worker's id, the token its subjects start with. The
// default is a random id.
func WithID(id string) Option {
	return func(o *options) error {
		if err := wire.CheckID("worker id", id); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		o.ID = id
		return nil
	}
}

// WithOwner names the master that spawned the worker: when that master
// closes the worker, the worker stops (see [Worker.Stopping]).
func WithOwner(master string) Option {
	return func(o *options) error {
		if err := wire.CheckID("owner id", master); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		o.Owner = master
		return nil
	}
}
