package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/lane"
	"github.com/processional/processional/internal/wire"
)

// EnvLane names the environment variable that, set to "off" in the
// master's environment, spawns every worker without a lane, as
// [WithoutLane] does one: its calls then go by NATS. Set to "dial", it
// makes every worker dial its lane, a Unix socket the master listens on,
// as on Windows, rather than inherit it: for tests of that path.
const EnvLane = "PROCESSIONAL_LANE"

// EnvParentDeathSignal names the environment variable that, set to "off"
// in the master's environment, spawns workers without the parent-death
// signal (Linux): the lane's EOF alone then tells them of their master's
// death. It is for tests and benchmarks of that path.
const EnvParentDeathSignal = "PROCESSIONAL_PDEATHSIG"

// WithoutLane spawns the worker without a lane: the master's calls,
// replies, cancels and heartbeats to it go through the NATS server, as
// those of every other master do. For debugging, and for comparing the
// two paths; $PROCESSIONAL_LANE=off does the same for every spawn.
func WithoutLane() SpawnOption {
	return func(o *spawnOptions) error {
		o.noLane = true
		return nil
	}
}

// laneFD is the descriptor the worker finds its end of the lane at: the
// first of exec.Cmd.ExtraFiles.
const laneFD = 3

// openLane makes the lane to a worker about to be spawned, and says in
// cfg where the worker finds it. It returns the worker's end, for
// exec.Cmd.ExtraFiles, or nil for a lane the worker dials: on Windows,
// which hands no socket down, and where $PROCESSIONAL_LANE=dial. A system
// without Unix sockets to dial spawns the worker without a lane.
func (s *slave) openLane(cfg *wire.WorkerConfig) (*os.File, error) {
	var conn lane.HalfCloser
	var child *os.File
	if os.Getenv(EnvLane) != "dial" {
		c, f, err := lane.Pair()
		switch {
		case err == nil:
			conn, child, cfg.Lane = c, f, laneFD
		case !errors.Is(err, errors.ErrUnsupported):
			return nil, err
		}
	}
	if conn == nil {
		d, err := lane.Listen()
		if errors.Is(err, errors.ErrUnsupported) {
			// A Windows before AF_UNIX: calls go by NATS, and the Job
			// Object alone carries the worker's fate.
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		conn, cfg.LaneAddr, cfg.LaneKey = d, d.Addr(), d.Key()
	}
	s.lane = lane.New(conn, int(s.m.maxValue)+lane.Overhead, s.laneAlive)
	s.laneDone, s.laneBye = make(chan struct{}), make(chan struct{})
	s.lr.init(s.lane)
	return child, nil
}

// dropLane closes both ends of a lane whose worker was never started.
func (s *slave) dropLane(child *os.File) {
	if s.lane == nil {
		return
	}
	if child != nil {
		child.Close()
	}
	s.laneShut.Store(true)
	s.lane.Close()
}

// laneAlive notes a sign of life as good as a heartbeat's answer: a piece of
// a large reply arriving.
func (s *slave) laneAlive() { s.lastAck.Store(time.Now().UnixNano()) }

// laneReaders arbitrates who reads a slave's lane. A caller waiting for
// its task's reply reads the lane itself (awaitLane), so that the reply
// wakes the goroutine that waits for it, not a reader that would then
// wake it: on a busy machine a goroutine hand-off costs more than the
// call. The slave's reader goroutine (readLane) reads when no caller
// does: the replies nobody waits for yet, heartbeats' answers, the
// lane's end. A caller that finds readLane reading and nobody else
// waiting kicks it out (lane.Conn.Kick) and reads in its place.
type laneReaders struct {
	token     sync.Mutex    // held by the goroutine reading the lane
	waiters   atomic.Int32  // callers waiting for their reply, not reading
	bgReading atomic.Bool   // readLane holds the token
	kicked    atomic.Bool   // a caller kicked readLane out
	inside    atomic.Bool   // the reader is handling a frame: a task it finishes needs no kick
	wake      chan struct{} // readLane reads now (nudge)
	freeMu    sync.Mutex
	free      chan struct{} // closed when readLane gives the token up
	endOnce   sync.Once     // laneEnded runs once, whichever reader meets the end
	kick      func()        // wakes the caller reading the lane, from a task finished elsewhere
}

func (r *laneReaders) init(l *lane.Conn) {
	r.wake = make(chan struct{}, 1)
	r.free = make(chan struct{})
	r.kick = func() {
		if !r.inside.Load() { // else the reader sees it after the frame
			l.Kick()
		}
	}
}

// freed returns the channel closed when readLane next gives the token up.
func (r *laneReaders) freed() <-chan struct{} {
	r.freeMu.Lock()
	defer r.freeMu.Unlock()
	return r.free
}

// wakeReader has readLane read at once.
func (r *laneReaders) wakeReader() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// nudge has readLane read the lane if nobody does: for a task someone
// waits for without reading (Task.Done, Task.Available), and on every
// heartbeat tick, for the heartbeats' answers and the lane's end. No
// timer is armed per call: arming one wakes an idle thread.
func (r *laneReaders) nudge() {
	if !r.bgReading.Load() && r.token.TryLock() {
		r.token.Unlock()
		r.wakeReader()
	}
}

// readLane reads the worker's frames when no caller does, until the lane
// ends.
func (s *slave) readLane() {
	defer close(s.laneDone)
	r := &s.lr
	for {
		if r.token.TryLock() {
			s.lane.Unkick()
			r.kicked.Store(false)
			r.bgReading.Store(true)
			ended := s.readFrames(r.kicked.Load)
			r.bgReading.Store(false)
			r.token.Unlock()
			r.freeMu.Lock()
			close(r.free) // the callers that kicked it out read now
			r.free = make(chan struct{})
			r.freeMu.Unlock()
			if ended {
				return
			}
		}
		<-r.wake
	}
}

// readFrames reads and handles the worker's frames until stop, asked
// after each, says so, or a kick. It reports whether the lane ended
// (handled by laneEnded, once).
func (s *slave) readFrames(stop func() bool) (ended bool) {
	r := &s.lr
	for {
		f, err := s.lane.Read()
		if lane.Kicked(err) {
			return false
		}
		if err != nil {
			r.endOnce.Do(func() { s.laneEnded(err) })
			return true
		}
		if raceEnabled {
			// What this process sent by NATS before the worker answered
			// (an exported object's reply to the worker's call) happens
			// before the answer, through the worker: a causality the race
			// detector cannot see across processes. The connection's lock,
			// which every publish takes, shows it to it, as it did when
			// answers came by NATS.
			s.m.nc.IsConnected()
		}
		r.inside.Store(true)
		err = s.handleFrame(f)
		r.inside.Store(false)
		if err != nil {
			s.lane.Close()
			r.endOnce.Do(func() { s.laneEnded(fmt.Errorf("garbage on the lane: %w", err)) })
			return true
		}
		if stop() {
			return false
		}
	}
}

// handleFrame handles one frame from the worker.
func (s *slave) handleFrame(f lane.Frame) error {
	switch f.Kind {
	case lane.Reply:
		if f.Pooled {
			return s.handleJoined(f.Body)
		}
		return s.handleReply(f.Body)
	case lane.Ack:
		return s.laneAck(f.Body)
	case lane.Bye:
		select {
		case <-s.laneBye:
			return fmt.Errorf("%w: a second bye", bus.ErrBadPayload)
		default:
			close(s.laneBye)
		}
		return nil
	}
	return fmt.Errorf("%w: a %s frame, which only a master sends", bus.ErrBadPayload, f.Kind)
}

// laneWaiter is a task a caller waits for: [Task].
type laneWaiter interface {
	finished() bool
	doneChan() <-chan struct{}
	// setKick sets what finishing the task calls, unless it has finished
	// already (it reports whether it set it); nil unsets it.
	setKick(func()) bool
}

// awaitLane blocks until t, a call sent on the lane, finishes, or ctx
// ends; it reports whether t finished. It reads the lane itself when no
// one else does, or kicks readLane out when it reads with nobody else
// waiting.
func (s *slave) awaitLane(ctx context.Context, t laneWaiter) bool {
	r := &s.lr
	kick := r.kick
	for !t.finished() {
		if ctx.Err() != nil {
			return false
		}
		if r.token.TryLock() {
			s.lane.Unkick()
			ended := false
			if t.setKick(kick) {
				var stopWatch func() bool
				if ctx.Done() != nil {
					stopWatch = context.AfterFunc(ctx, kick)
				}
				ended = s.readFrames(func() bool { return t.finished() || ctx.Err() != nil })
				if stopWatch != nil {
					stopWatch()
				}
				t.setKick(nil)
			}
			r.token.Unlock()
			if ended || r.waiters.Load() > 0 {
				r.wakeReader()
			}
			if ended {
				break
			}
			continue
		}
		free := r.freed()
		if r.waiters.Add(1) == 1 && r.bgReading.Load() {
			r.kicked.Store(true)
			s.lane.Kick()
		}
		select {
		case <-t.doneChan():
		case <-free:
		case <-ctx.Done():
		}
		r.waiters.Add(-1)
	}
	select {
	case <-t.doneChan():
		return true
	case <-ctx.Done():
		return false
	}
}

// laneEnded handles the end of the lane's reads. After the master let go
// of it (detach, persist) or closed it, that is no news; otherwise the
// worker died, or closed or broke the lane: its pending calls fail with
// [bus.ErrWorkerLost] at once, and it is killed.
func (s *slave) laneEnded(err error) {
	if s.laneShut.Load() {
		return // the master closed it
	}
	clean := lane.Ended(err)
	s.mu.Lock()
	if (clean && s.laneLetGo) || s.state == slaveGone {
		s.mu.Unlock()
		return
	}
	var why error
	if clean {
		why = fmt.Errorf("%w: worker %s closed its lane: it exited, died, or broke it", bus.ErrWorkerLost, s.id)
	} else {
		why = fmt.Errorf("%w: worker %s broke its lane: %w", bus.ErrWorkerLost, s.id, err)
	}
	open := s.state == slaveOpen
	s.mu.Unlock()
	if clean {
		// A worker that exits closes its lane a moment before it is seen
		// to exit: watchProcess then fails its calls, with its exit
		// status. One that runs on after closing its lane is killed.
		select {
		case <-s.died:
			return
		case <-time.After(laneExitGrace):
		}
		why = fmt.Errorf("%w: worker %s closed its lane and did not exit within %s", bus.ErrWorkerLost, s.id, laneExitGrace)
	}
	s.mu.Lock()
	if s.lost == nil && (open || s.pending.live > 0) {
		s.lost = why
	}
	pending, _ := s.takeAllLocked()
	if s.lost != nil {
		why = s.lost
	}
	s.mu.Unlock()
	if !clean {
		slog.Error("processional: the lane to a worker broke: killing it", "worker", s.id, "err", err)
	}
	for _, p := range pending {
		p.resolve(nil, nil, why)
	}
	if open || !clean {
		s.declareLost(why)
	}
}

// laneExitGrace is how long a worker that closed its lane has to be
// seen to exit before it is killed.
const laneExitGrace = 250 * time.Millisecond

// laneAck records a heartbeat's acknowledgement that came on the lane.
func (s *slave) laneAck(data []byte) error {
	epoch, raw, remote, err := wire.DecodeReply(data)
	if err != nil {
		return err
	}
	if remote != nil { // the worker dropped us: our lease lapsed there
		s.declareLost(remote)
		return nil
	}
	if raw == nil {
		return fmt.Errorf("%w: a heartbeat's acknowledgement with no worker id", bus.ErrBadPayload)
	}
	s.lastAck.Store(time.Now().UnixNano())
	// The worker's NATS connection epoch: recorded, and no call failed
	// when it changes, for the calls on the lane did not cross NATS.
	s.mu.Lock()
	s.epoch, s.epochSeen = epoch, true
	s.mu.Unlock()
	return nil
}

// viaLane sends a frame of kind k on the lane, and reports whether it
// went (or failed for good, with err); not sent, it goes by NATS. After
// the master let go of the lane, it waits for the worker's Bye, so that
// what goes by NATS arrives after what went on the lane.
func (s *slave) viaLane(k lane.Kind, data []byte) (sent bool, err error) {
	return s.viaLaneQueued(k, data, false)
}

// viaLaneQueued is viaLane, leaving the frame to the lane's flusher when
// queued is set (lane.Conn.Queue).
func (s *slave) viaLaneQueued(k lane.Kind, data []byte, queued bool) (sent bool, err error) {
	if s.lane == nil {
		return false, nil
	}
	if queued {
		err = s.lane.Queue(k, data)
	} else {
		err = s.lane.Write(k, data)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, lane.ErrLetGo):
		select {
		case <-s.laneBye:
		case <-s.laneDone:
		}
		return false, nil
	}
	s.mu.Lock()
	lost := s.lost
	s.mu.Unlock()
	if lost == nil {
		lost = fmt.Errorf("%w: worker %s: its lane is closed: %v", bus.ErrWorkerLost, s.id, err)
	}
	return true, lost
}

// laneLive reports whether the master's calls to s go on its lane.
func (s *slave) laneLive() bool { return s.lane != nil && s.lane.Live() }

// letGoLane ends the master's writes on the lane after a detach or
// persist: the worker answers the calls it read on it there, and takes
// the master's later ones by NATS.
func (s *slave) letGoLane() {
	if s.lane == nil {
		return
	}
	s.mu.Lock()
	s.laneLetGo = true
	s.mu.Unlock()
	s.lane.LetGo()
}

// closeLane closes the master's end of the lane once the worker is gone
// or let go of, after its reader has read what the worker wrote, 5 s at
// most: a worker's child that kept the lane open would hold it for ever.
func (s *slave) closeLane(wait bool) {
	if s.lane == nil {
		return
	}
	if wait {
		s.lr.wakeReader() // to read what is left, to the end
		select {
		case <-s.laneDone:
		case <-time.After(5 * time.Second):
		}
	}
	s.laneShut.Store(true)
	s.lane.Close()
	s.lr.wakeReader() // should it wait for its turn to read
	<-s.laneDone
}

// laneEnabled reports whether the environment leaves the lane on.
func laneEnabled() bool { return os.Getenv(EnvLane) != "off" }

// parentDeathSignal is the signal the kernel sends a spawned worker when
// its master dies, unless the environment turns it off.
func parentDeathSignal() (sig int) {
	if os.Getenv(EnvParentDeathSignal) == "off" {
		return 0
	}
	return int(wire.ParentDeathSignal)
}
