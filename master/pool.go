package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// ErrNoMembers: a pool has no member that this master can use.
var ErrNoMembers = bus.RegisterError("master.ErrNoMembers", errors.New("processional: pool has no members"))

// Pool is the workers started with the same pool name (`processional worker
// --pool NAME`, worker.WithPool) on the master's NATS server or cluster: an
// [Executor] whose calls go to any member, the one with the fewest calls
// in flight. Each member is also a [*Slave] of its own ([Pool.Members]),
// to pin calls to it. A member that dies fails the calls it held with
// [bus.ErrWorkerLost], within the lease; [Map] can retry them on another
// member.
//
// The members are found when the pool is made, and again by
// [Pool.Refresh]. Its methods are safe for concurrent use.
type Pool struct {
	m    *Master
	name string

	mu      sync.Mutex
	members []*Slave
	turn    int // where pick starts looking: ties go round
}

func (*Pool) executor() {}

// String describes the pool for messages.
func (p *Pool) String() string { return "pool " + p.name }

// discoverWait is how long a pool gathers its members' answers.
const discoverWait = 300 * time.Millisecond

// Pool finds the members of pool name on the master's NATS server (or
// cluster) and attaches to each: the master holds a lease on each, as on a
// server it connected to. A pool with no member fails at once with
// [ErrNoMembers]; a member of another protocol version is left out, and
// logged.
func (m *Master) Pool(ctx context.Context, name string) (*Pool, error) {
	if err := wire.CheckID("pool name", name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	p := &Pool{m: m, name: name}
	if err := p.Refresh(orBackground(ctx)); err != nil {
		return nil, err
	}
	return p, nil
}

// Name is the pool's name.
func (p *Pool) Name() string { return p.name }

// Members returns the pool's members that are alive.
func (p *Pool) Members() []*Slave {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Slave, 0, len(p.members))
	for _, s := range p.members {
		if s.alive() {
			out = append(out, s)
		}
	}
	return out
}

// Refresh finds the pool's members again: new ones join, gone ones leave.
// A member that did not answer but is not gone (its lease holds: it is
// stopped for a moment, or its answer was lost in a NATS outage, or it is
// on its lane) stays. It fails with [ErrNoMembers] when none is left.
func (p *Pool) Refresh(ctx context.Context) error {
	ids, err := p.m.discover(ctx, p.name)
	if err != nil {
		return err
	}
	var members []*Slave
	found := make(map[*slave]bool, len(ids))
	for _, id := range ids {
		s, err := p.m.slaveOf(ctx, id)
		if err != nil {
			slog.Warn("processional: pool member left out", "pool", p.name, "worker", id, "err", err)
			continue
		}
		members = append(members, &Slave{s})
		found[s] = true
	}
	p.mu.Lock()
	for _, s := range p.members {
		if !found[s.slave] && s.alive() {
			members = append(members, s)
		}
	}
	p.members = members
	p.mu.Unlock()
	if len(members) == 0 {
		return fmt.Errorf("%w: pool %q has no members on %s", ErrNoMembers, p.name, p.m.url)
	}
	return nil
}

// pick returns the live member with the fewest calls in flight; among
// equals, each in turn.
func (p *Pool) pick() (*slave, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best *slave
	bestLoad := 0
	p.turn++
	for i := range p.members {
		s := p.members[(p.turn+i)%len(p.members)].slave
		s.mu.Lock()
		open, load := s.state == slaveOpen, s.pending.live
		s.mu.Unlock()
		if open && (best == nil || load < bestLoad) {
			best, bestLoad = s, load
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: every member of pool %q is gone", ErrNoMembers, p.name)
	}
	return best, nil
}

// alive reports whether the worker is still open for calls.
func (s *slave) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == slaveOpen
}

// Close lets go of the pool's members, as [Slave.Close] does: they finish
// this master's calls and forget it; a connected member serves on, a
// member this master spawned (master.InPool) exits.
func (p *Pool) Close() error {
	p.mu.Lock()
	members := p.members
	p.members = nil
	p.mu.Unlock()
	for _, s := range members {
		s.Close()
	}
	return nil
}

// discover lists the ids of the workers of pool name that answer the
// micro service discovery, of this protocol version.
func (m *Master) discover(ctx context.Context, pool string) ([]string, error) {
	inbox := nats.NewInbox()
	msgs := make(chan *nats.Msg, 256)
	sub, err := m.nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := m.nc.PublishRequest("$SRV.INFO.processional", inbox, nil); err != nil {
		return nil, err
	}
	var ids []string
	timer := time.NewTimer(discoverWait)
	defer timer.Stop()
	for {
		select {
		case msg := <-msgs:
			var info struct {
				Metadata map[string]string `json:"metadata"`
			}
			if json.Unmarshal(msg.Data, &info) != nil || info.Metadata["pool"] != pool {
				continue
			}
			if v := info.Metadata["protocol"]; v != fmt.Sprint(wire.Version()) {
				slog.Warn("processional: a pool member of another protocol version is left out",
					"pool", pool, "worker", info.Metadata["worker"], "protocol", v, "ours", wire.Version())
				continue
			}
			ids = append(ids, info.Metadata["worker"])
		case <-timer.C:
			sort.Strings(ids)
			return ids, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// MapOption configures [Map]. An option refuses a bad value with an
// error wrapping [ErrConfig], which Map gives as every item's error.
type MapOption func(*mapOptions) error

type mapOptions struct {
	inFlight   int
	idempotent bool
}

// InFlight bounds the items in flight at once; the default is 4096. It
// refuses a count that is not positive.
func InFlight(n int) MapOption {
	return func(o *mapOptions) error {
		if n <= 0 {
			return fmt.Errorf("%w: InFlight(%d): want a positive count", ErrConfig, n)
		}
		o.inFlight = n
		return nil
	}
}

// Idempotent says that f may run twice for an item: an item whose member
// died, or dropped this master's calls (its lease lapsed there), is sent
// again to another member, instead of failing with [bus.ErrWorkerLost]
// or [bus.ErrLeaseLapsed].
func Idempotent() MapOption {
	return func(o *mapOptions) error { o.idempotent = true; return nil }
}

// Map calls f on every item across the pool's members, with a bounded
// number in flight, and returns the results in the items' order with each
// item's own error (nil where it succeeded).
func Map[A, R any](ctx context.Context, p *Pool, f *bus.Func[A, R], items []A, opts ...MapOption) ([]R, []error) {
	ctx = orBackground(ctx)
	o := mapOptions{inFlight: 4096}
	results := make([]R, len(items))
	errs := make([]error, len(items))
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			for i := range errs {
				errs[i] = err
			}
			return results, errs
		}
	}
	tasks := make([]*Task[R], len(items))
	next := 0
	send := func(i int) { tasks[i] = submit(ctx, p, f, items[i], wire.KindCall, watchGroup) }
	for ; next < len(items) && next < o.inFlight; next++ {
		send(next)
	}
	for i := range items {
		v, err := tasks[i].Wait(ctx)
		for tries := 1; err != nil && o.idempotent && (errors.Is(err, bus.ErrWorkerLost) || errors.Is(err, bus.ErrLeaseLapsed)) && tries <= len(p.Members())+1; tries++ {
			send(i)
			v, err = tasks[i].Wait(ctx)
		}
		results[i], errs[i] = v, err
		tasks[i] = nil
		if next < len(items) {
			send(next)
			next++
		}
	}
	return results, errs
}
