package master

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/shm"
)

// watchProcess waits until the spawned process exits or is abandoned, reaps it, and ends the slave.
func (s *slave) watchProcess() {
	defer close(s.watched)
	pid := s.cmd.Process.Pid
	if !s.proc.waitExit(pid) {
		// Abandoned: the master let go of a detached or persistent
		// worker, which lives on without us.
		s.closeLane(false)
		s.proc.closeOutput()
		s.stdout.flush()
		s.stderr.flush()
		s.mu.Lock()
		s.reaped = true // not ours to signal any more
		if s.lost == nil {
			s.lost = fmt.Errorf("%w: the master let go of worker %s, which lives on", bus.ErrClosed, s.id)
		}
		s.mu.Unlock()
		s.markGone()
		// Still our child: when it exits, take its group along and reap
		// it. No owner awaits this reaper: it lives as long as the worker
		// the master let go of, and no longer.
		go func() {
			waitGone(pid)
			s.proc.killGroup(pid)
			s.proc.release()
			s.cmd.Wait()
		}()
		return
	}
	s.proc.abandon() // nobody will now: close its pipe
	close(s.died)
	s.mu.Lock()
	// The exited process still holds its pid until reaped: the group id
	// names no one else yet.
	s.proc.killGroup(pid)
	s.reaped = true
	s.proc.release()
	s.mu.Unlock()
	s.cmd.Wait()
	// The shared memory the worker held and no one else does: a worker
	// killed could not release it.
	shm.Exited(pid)
	shm.Sweep()
	s.proc.drainOutput()
	s.stdout.flush()
	s.stderr.flush()
	// The replies it sent before exiting are answers, not losses: those
	// on the lane, then those by NATS.
	s.closeLane(true)
	s.drainReplies()
	s.mu.Lock()
	switch {
	case s.lost != nil:
	case s.state == slaveClosing && s.cmd.ProcessState.Success():
		s.lost = fmt.Errorf("%w: worker %s is closed", bus.ErrClosed, s.id)
	default:
		s.lost = fmt.Errorf("%w: worker %s (pid %d) exited: %s", bus.ErrWorkerLost, s.id, s.cmd.Process.Pid, s.cmd.ProcessState)
	}
	s.mu.Unlock()
	s.markGone()
}

// markGone ends the slave for this master: pending calls fail with s.lost, Exited closes; the first call counts.
func (s *slave) markGone() {
	s.mu.Lock()
	if s.state == slaveGone {
		s.mu.Unlock()
		return
	}
	if s.lost == nil {
		s.lost = fmt.Errorf("%w: worker %s is closed", bus.ErrClosed, s.id)
	}
	s.state = slaveGone
	pending, _ := s.takeAllLocked()
	err := s.lost
	s.mu.Unlock()
	close(s.exited)
	for _, p := range pending {
		p.resolve(nil, nil, err)
	}
}

// exitStatus describes how the process ended; call it after exited.
func (s *slave) exitStatus() string { return s.cmd.ProcessState.String() }

// close is [Slave.Close]: it asks the worker to close and waits until the slave is gone.
func (s *slave) close() {
	s.mu.Lock()
	s.closed = true
	if s.state == slaveOpen {
		s.state = slaveClosing
		s.mu.Unlock()
		if err := s.sendClose(); err != nil {
			if s.cmd == nil {
				s.markGone()
			} else {
				s.killGroup()
			}
		}
	} else {
		s.mu.Unlock()
	}
	s.awaitGone()
	s.unregister()
}

// awaitGone waits until the slave is gone and, for a spawned worker, its watchProcess has returned.
func (s *slave) awaitGone() {
	<-s.exited
	if s.watched != nil {
		<-s.watched
	}
}

// sendClose sends the worker Close's request. A connected worker lives
// on: it acknowledges the close once this master's calls are done, and
// forgets the master. A spawned worker exits.
func (s *slave) sendClose() error {
	if s.cmd != nil {
		return s.control(wire.KindClose, 0)
	}
	data, err := wire.AppendCall(nil, &wire.Call{Kind: wire.KindClose, Master: s.m.id, ID: closeID}, nil)
	if err != nil {
		return err
	}
	return s.post(data, closeID, true, false) // after the calls waiting to go
}

// closeAgain sends Close's request again, when Close waits for the worker
// and the master's or the worker's connection dropped and came back: NATS
// delivers at most once, so the request may have been lost, and then the
// worker would go on answering heartbeats and Close wait for ever. A
// worker takes a second close as it took the first: one that already
// forgot the master answers it again.
func (s *slave) closeAgain() {
	s.mu.Lock()
	waiting := s.state == slaveClosing && s.lost == nil && !s.detached // in Close, not lost nor detached
	s.mu.Unlock()
	if waiting {
		s.sendClose()
	}
}

// closeID is the id of a connected worker's close request: its
// acknowledgement ends the slave. pendingSet never hands it out.
const closeID = math.MaxUint64

// terminate is [Slave.Terminate]: it declares the worker lost and waits until the slave is gone.
func (s *slave) terminate() {
	s.declareLost(fmt.Errorf("%w: worker %s was terminated by its master", bus.ErrWorkerLost, s.id))
	s.awaitGone()
	s.unregister()
}

// declareLost gives up on the worker, why failing its calls: it kills a spawned one, lets go of any other.
//
// It does not wait: for a spawned worker, watchProcess fails the pending
// calls once the process is gone.
func (s *slave) declareLost(why error) {
	s.mu.Lock()
	if s.state != slaveGone && s.lost == nil {
		s.lost = why
	}
	if s.outlives && s.cmd != nil {
		// Detached or persistent: not ours to kill. Let go of it: its
		// pending calls fail with why.
		s.mu.Unlock()
		s.proc.abandon()
		return
	}
	if s.state == slaveOpen {
		s.state = slaveClosing
	}
	s.mu.Unlock()
	if s.cmd == nil {
		// Not ours to kill: tell it we are gone, and let go.
		s.control(wire.KindClose, 0)
		s.markGone()
		return
	}
	s.killGroup()
}

// killGroup sends SIGKILL to the spawned worker's process group, unless its process is reaped.
func (s *slave) killGroup() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil && !s.reaped {
		// The negative pid names the process group: the worker and
		// whatever it started.
		s.proc.killGroup(s.cmd.Process.Pid)
	}
}

// drainReplies waits, 5 s at most, until onReply has handled every reply delivered before now.
//
// A worker that closed flushed its replies before it exited, and they must
// not be failed as lost. A marker sent on the reply subject arrives after
// them.
func (s *slave) drainReplies() {
	if !s.m.nc.IsConnected() {
		// Cut off from the server: what the worker sent is lost, and the
		// marker would wait in the reconnect buffer, not come back.
		return
	}
	ch := make(chan struct{})
	s.mu.Lock()
	s.drained = ch
	s.mu.Unlock()
	if s.m.nc.Publish(s.replySubject, nil) != nil {
		return // the connection is closed: nothing more will arrive
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
	}
}

// detach is [Slave.Detach]: once the worker agrees, the slave takes no more calls and gets no heartbeats.
func (s *slave) detach(ctx context.Context) error {
	if err := s.ownerRequest(ctx, wire.KindDetach); err != nil {
		return err
	}
	s.mu.Lock()
	s.outlives, s.detached = true, true
	if s.state == slaveOpen {
		s.state = slaveClosing
	}
	s.mu.Unlock()
	return nil
}

// persist is [Slave.Persist]: once the worker agrees, Master.Close abandons it instead of closing it.
func (s *slave) persist(ctx context.Context) error {
	if err := s.ownerRequest(ctx, wire.KindPersist); err != nil {
		return err
	}
	s.mu.Lock()
	s.outlives = true
	s.mu.Unlock()
	return nil
}

// ownerRequest sends the worker a request only its owner may, and waits
// for its acknowledgement.
func (s *slave) ownerRequest(ctx context.Context, kind wire.Kind) error {
	if s.cmd == nil {
		return fmt.Errorf("%w: %s: worker %s was not spawned by this master", ErrBadCall, kind, s.id)
	}
	s.mu.Lock()
	if s.state != slaveOpen {
		err := s.closedErr()
		s.mu.Unlock()
		return err
	}
	// Before asking: should the answer be lost, the worker may have acted,
	// and then it must not be killed as ours, nor with us.
	s.outlives = true
	s.proc.outlive()
	s.mu.Unlock()
	ctx = orBackground(ctx)
	t := newTask[struct{}](kind.String())
	s.send(ctx, kind, "", "", nil, t, watchGroup)
	if _, err := t.Wait(ctx); err != nil {
		if re := (*bus.RemoteError)(nil); errors.As(err, &re) {
			return re
		}
		return fmt.Errorf("worker %s: %s: %w", s.id, kind, err)
	}
	// The worker outlives us now: the lane is no longer its fate. It
	// answers on the lane what it read there, and reads our later calls
	// by NATS.
	s.letGoLane()
	return nil
}

// abandon ends the master's hold on a worker that outlives it, and waits until the slave is gone.
//
// The worker runs on, its output no longer copied; its calls still
// pending fail with [bus.ErrClosed].
func (s *slave) abandon() {
	s.proc.abandon()
	s.awaitGone()
	s.unregister()
}

// setRelease sets what unregister calls to drop the slave's master.
func (s *slave) setRelease(release func()) {
	s.mu.Lock()
	s.release = release
	s.mu.Unlock()
}

// unregister detaches a gone slave from its master, once: reply subscription, table entry, release.
func (s *slave) unregister() {
	s.closeOnce.Do(func() {
		s.unsubscribe()
		s.m.forget(s)
		s.mu.Lock()
		release := s.release
		s.release = nil
		s.mu.Unlock()
		if release != nil {
			release()
		}
	})
}
