package master

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/lane"
	"github.com/processional/processional/internal/wire"
)

// Default lease timing; see [WithLease] and [WithChildLease]. They were
// chosen from `processional falseloss`, which watches healthy workers
// under busy loops on every core: docs/lifetimes.md gives its figures.
const (
	// DefaultLease is the lease of workers elsewhere: connected servers
	// and pool members, whose death or hang only their silence tells.
	// Under busy loops on every core and -race, 500 ms failed healthy
	// workers, 1 s failed none but its worst call took 0.8 s: twice that.
	DefaultLease = 2 * time.Second
	// DefaultChildLease is the lease of the workers a master spawns. A
	// child's death is seen at once (its lane ends, its process exits),
	// and so is its master's: the lease catches only a child, or a
	// master, that hangs, and a long one costs nothing else.
	DefaultChildLease = 5 * time.Second
)

// WithLease sets how long a worker keeps the master's state (its calls,
// and for a spawned worker its life) without a heartbeat, and how often
// the master sends one. The same length bounds how long the master waits
// for a worker's acknowledgement before it fails the worker's calls with
// [bus.ErrWorkerLost]. The defaults are a lease of [DefaultLease] and an
// interval of a quarter of the lease; the interval must be shorter than
// the lease.
//
// Given alone, the lease is the spawned workers' too; [WithChildLease]
// sets theirs apart.
func WithLease(lease, interval time.Duration) Option {
	return func(o *options) error {
		if lease <= 0 || interval <= 0 || interval >= lease {
			return fmt.Errorf("%w: lease %s with heartbeats every %s: want 0 < interval < lease", ErrConfig, lease, interval)
		}
		o.lease, o.interval = lease, interval
		o.note("WithLease")
		return nil
	}
}

// WithChildLease sets the lease of the workers the master spawns, apart
// from the lease of workers elsewhere ([WithLease]): how long a spawned
// worker that hangs keeps its calls before they fail with
// [bus.ErrWorkerLost], and how long a spawned worker outlives a master
// that hangs (not one that dies: that is seen at once). The default is
// [DefaultChildLease], or the lease given to WithLease. Heartbeats go at
// least every quarter of it.
func WithChildLease(lease time.Duration) Option {
	return func(o *options) error {
		if lease <= 0 {
			return fmt.Errorf("%w: child lease %s: want a positive duration", ErrConfig, lease)
		}
		o.child = lease
		return nil
	}
}

// heartbeats renews the master's lease on each of its workers every
// interval, and fails the workers that stopped answering, until stop is
// closed. It also fails the calls in flight when the master's connection
// reconnected (see sawReconnect).
func (m *Master) heartbeats(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	// One envelope per lease, built once: leaseOf picks it for each worker.
	beats := map[time.Duration][]byte{m.lease: m.heartbeat(m.lease), m.childLease: m.heartbeat(m.childLease)}
	t := time.NewTicker(m.tick())
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			if now.Sub(last) > 2*m.tick() {
				// The master itself was stalled: the workers' silence is
				// ours. Give each a fresh lease's worth of answers.
				for _, s := range m.liveSlaves() {
					s.lastAck.Store(now.UnixNano())
				}
			}
			last = now
			if m.sawReconnect() { // on a connection given, the only one to see it
				m.reconnected()
			}
			for _, s := range m.liveSlaves() {
				lease := m.leaseOf(s)
				if silent := now.Sub(time.Unix(0, s.lastAck.Load())); silent > lease {
					s.declareLost(fmt.Errorf("%w: worker %s answered no heartbeat for %s (lease %s)", bus.ErrWorkerLost, s.id, silent.Round(time.Millisecond), lease))
					continue
				}
				s.heartbeat(beats[lease])
				if s.lane != nil {
					s.lr.nudge() // the answers, and the lane's end, are read within a tick
				}
			}
		}
	}
}

// liveSlaves lists the slaves that are neither gone nor being killed, nor
// exited: an exited worker answers no heartbeat, and its exit status, not
// its silence while the master reaps it, says why it is gone.
func (m *Master) liveSlaves() []*slave {
	m.mu.Lock()
	all := m.slaveListLocked()
	m.mu.Unlock()
	out := all[:0]
	for _, s := range all {
		s.mu.Lock()
		live := s.state != slaveGone && s.lost == nil && !s.detached && !s.reaped
		s.mu.Unlock()
		if live {
			out = append(out, s)
		}
	}
	return out
}

// tick is how often the master sends heartbeats and looks for silent
// workers: the interval given with the lease, shorter if a quarter of the
// child lease is shorter still.
func (m *Master) tick() time.Duration { return min(m.interval, m.childLease/4) }

// leaseOf is the lease s holds: a spawned worker's, or a worker's
// elsewhere.
func (m *Master) leaseOf(s *slave) time.Duration {
	if s.cmd != nil {
		return m.childLease
	}
	return m.lease
}

// heartbeat is the envelope of the master's heartbeats for a lease.
func (m *Master) heartbeat(lease time.Duration) []byte {
	beat, err := wire.AppendCall(nil, &wire.Call{Kind: wire.KindHeartbeat, Master: m.id, Timeout: lease}, nil)
	if err != nil {
		panic(err) // a fixed envelope always encodes
	}
	return beat
}

// firstBeat sends worker id a heartbeat for lease at once, ahead of the
// periodic ones, and flushes it.
func (m *Master) firstBeat(id string, lease time.Duration) error {
	if err := m.nc.PublishRequest(wire.HeartbeatSubject(id), m.hbInbox, m.heartbeat(lease)); err != nil {
		return err
	}
	return m.nc.Flush()
}

// onAck records a worker's acknowledgement of a heartbeat.
func (m *Master) onAck(msg *nats.Msg) {
	epoch, raw, remote, err := wire.DecodeReply(msg.Data)
	if err != nil {
		return
	}
	if remote != nil { // the worker dropped us: our lease lapsed there
		m.mu.Lock()
		s := m.slaves[remote.Worker]
		m.mu.Unlock()
		if s != nil {
			s.declareLost(remote)
		}
		return
	}
	var id string
	if codec.Unmarshal(raw, &id) != nil {
		return
	}
	m.mu.Lock()
	s := m.slaves[id]
	m.mu.Unlock()
	if s != nil {
		s.lastAck.Store(time.Now().UnixNano())
		s.sawEpoch(epoch)
	}
}

// sawEpoch notes the worker's connection epoch from a heartbeat answer.
// An epoch of another process (its high half) means the worker died and
// another process took its id: the worker is lost, and a pool or a
// reference attaches to the new one afresh. A new epoch of the same
// process means the worker's connection dropped and came back: NATS
// delivers at most once, so the calls in flight then may never have
// arrived, and would wait for ever. They fail with [bus.ErrWorkerLost],
// and the worker is asked to cancel those that did arrive; a close is
// sent again.
func (s *slave) sawEpoch(epoch uint64) {
	s.mu.Lock()
	if s.epochSeen && s.epoch>>32 == 0 {
		// The epoch from a spawned worker's hello (0) names no process:
		// this first answer does. (A worker of before has 0 for ever.)
		s.epoch |= epoch &^ (1<<32 - 1)
	}
	if !s.epochSeen || epoch == s.epoch {
		s.epoch, s.epochSeen = epoch, true
		s.abandoned = nil // the worker was there to hear their cancels
		s.mu.Unlock()
		return
	}
	if epoch>>32 != s.epoch>>32 {
		// Another process answers under the worker's id: the one the
		// calls went to died (and was started again within the lease).
		s.epoch = epoch
		s.mu.Unlock()
		s.declareLost(fmt.Errorf("%w: worker %s restarted: another process answers under its id, and the calls sent to the one before died with it", bus.ErrWorkerLost, s.id))
		return
	}
	s.epoch = epoch
	lost, ids := s.takeAllLocked()
	ids = append(ids, s.abandoned...)
	s.abandoned = nil
	s.mu.Unlock()
	s.failTaken(lost, ids, fmt.Errorf("%w: worker %s reconnected to NATS: the calls in flight when its connection dropped may never have arrived", bus.ErrWorkerLost, s.id))
	s.closeAgain() // a close too
}

// heartbeat sends the worker a heartbeat: on its lane, or by NATS.
func (s *slave) heartbeat(beat []byte) {
	if sent, _ := s.viaLane(lane.Beat, beat); sent {
		return
	}
	s.m.nc.PublishRequest(wire.HeartbeatSubject(s.id), s.m.hbInbox, beat)
}
