package master

import (
	"fmt"
	"io"
	"strings"
	"time"

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
	authBy       string          // the option that set auth
	noLane       bool            // WithoutLane
}

// setAuth sets what the worker presents, unless the other worker-auth
// option did already: one would silently undo the other.
func (o *spawnOptions) setAuth(by string, f natsauth.Files) error {
	if o.authBy != "" && o.authBy != by {
		return fmt.Errorf("%w: %s and %s together: the worker presents one, give one", ErrConfig, o.authBy, by)
	}
	o.auth, o.authBy = &f, by
	return nil
}

// InPool makes the spawned worker a member of pool name (see
// [Master.Pool]): besides being this master's Slave, it takes the pool's
// calls.
func InPool(name string) SpawnOption {
	return func(o *spawnOptions) error {
		if err := wire.CheckID("pool name", name); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
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
// spawn one. It is refused with [WithWorkerCredentials], and by a master
// on its embedded server, which takes its own token.
func WithWorkerUserInfo(user, password string) SpawnOption {
	return func(o *spawnOptions) error {
		if user == "" {
			return fmt.Errorf("%w: empty NATS user name for the worker", ErrConfig)
		}
		return o.setAuth("WithWorkerUserInfo", natsauth.Files{User: user, Password: password})
	}
}

// WithWorkerCredentials makes the spawned worker present this NATS
// credentials file instead of the master's credentials (see
// [WithWorkerUserInfo]). It is refused with WithWorkerUserInfo, and by a
// master on its embedded server, which takes its own token.
func WithWorkerCredentials(file string) SpawnOption {
	return func(o *spawnOptions) error {
		if file == "" {
			return fmt.Errorf("%w: empty credentials file name for the worker", ErrConfig)
		}
		return o.setAuth("WithWorkerCredentials", natsauth.Files{Creds: file})
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
		if err := wire.CheckID("worker id", id); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
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
