package master

import (
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/natsauth"
	"github.com/processional/processional/internal/wire"
)

// connOptions are the nats.go options of a connection the master makes
// to a server it was given ([WithNATS], [Connect]). It reconnects
// promptly and without end ([natsauth.Reconnect]): the master's leases,
// not a count of attempts, bound how long its workers wait for it, and
// its heartbeats fail the calls of a worker that stays silent for a
// lease. A reconnect fails the calls in flight (see [Master.reconnected]);
// disconnections and slow consumer events are logged.
func (m *Master) connOptions() []nats.Option {
	return append(natsauth.Reconnect(),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				slog.Warn("processional: the master lost its NATS connection; reconnecting", "master", m.id, "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			slog.Info("processional: the master's NATS connection is back", "master", m.id, "url", nc.ConnectedUrlRedacted())
			if m.sawReconnect() { // else the heartbeats saw it first
				m.reconnected()
			}
		}),
		nats.ErrorHandler(natsauth.ErrorHandler(slog.Warn, "master", m.id)),
	)
}

// maxPayload is the server's max payload (chunks.MaxPayload).
func (m *Master) maxPayload() int { return m.maxPay.Of(m.nc) }

// sawReconnect reports whether the master's connection reconnected since
// the last call that reported one, from nats.go's count of reconnects.
// The reconnect handler of a connection the master made and the
// heartbeats, which see to a connection given with [WithConn] (it has no
// handler of ours), both ask: each reconnect fails the calls in flight
// once, whoever asks first. A connection not connected now is counted
// when it is: the calls sent meanwhile wait in its reconnect buffer, and
// are not lost.
func (m *Master) sawReconnect() bool {
	n := m.nc.Stats().Reconnects
	if !m.nc.IsConnected() {
		return false
	}
	for {
		seen := m.reconnects.Load()
		if n <= seen {
			return false
		}
		if m.reconnects.CompareAndSwap(seen, n) {
			return true
		}
	}
}

// reconnected fails the calls in flight on every worker of the master,
// with [bus.ErrWorkerLost], once the master's connection dropped and came
// back: NATS delivers at most once, so a call sent then, or its answer,
// may have been lost, and would be waited for without end. Tasks sent
// through [Slave.Idempotent] are sent again.
func (m *Master) reconnected() {
	m.maxPay.Reset() // the new server's may differ
	m.mu.Lock()
	slaves := m.slaveListLocked()
	m.mu.Unlock()
	for _, s := range slaves {
		if s.laneLive() {
			continue // its calls go on the lane, which lost none
		}
		s.failInFlight(fmt.Errorf("%w: master %s's connection to NATS dropped and came back: the calls in flight to worker %s then, or their answers, may have been lost", bus.ErrWorkerLost, m.id, s.id))
	}
}

// failInFlight fails every call pending on s with err, for the master's
// reconnect, and asks the worker to cancel each: a call that did arrive
// must not run on for nobody. Should the worker's connection have dropped
// too, the cancels may not reach it: they go again when the master sees
// the worker's new epoch (sawEpoch). A close the worker may not have
// heard goes again too.
func (s *slave) failInFlight(err error) {
	s.mu.Lock()
	lost, ids := s.takeAllLocked()
	s.abandoned = append(s.abandoned, ids...)
	s.mu.Unlock()
	s.failTaken(lost, ids, err)
	s.closeAgain()
}

// takeAllLocked removes every pending call, and returns them with their
// ids, and drops the replies half joined; s.mu held.
func (s *slave) takeAllLocked() ([]pendingCall, []uint64) {
	lost, ids := s.pending.drain()
	for _, p := range lost {
		s.leaveGroupLocked(p)
	}
	s.dropJoinsLocked()
	return lost, ids
}

// failTaken fails the calls takeAllLocked took with err, and asks the
// worker to cancel them.
func (s *slave) failTaken(lost []pendingCall, ids []uint64, err error) {
	for _, p := range lost {
		p.resolve(nil, nil, err)
	}
	for _, id := range ids {
		s.control(wire.KindCancel, id)
	}
}
