package serve

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/chunks"
	"github.com/processional/processional/internal/lane"
)

// serveLane reads the owner's frames on the lane, in order, until it
// ends, or until a relief reader takes the lane over (drainInline).
func (w *Worker) serveLane() {
	defer w.laneReaders.Done()
	for {
		f, err := w.lane.Read()
		if err != nil {
			w.laneStopped(err)
			return
		}
		switch f.Kind {
		case lane.Call, lane.Send:
			reply := ""
			if f.Kind == lane.Call {
				reply = laneReply
			}
			if f.Pooled {
				err = w.handleJoined(&w.laneIn, f.Body, reply)
			} else {
				err = w.handleCall(&w.laneIn, f.Body, reply)
			}
		case lane.Beat:
			w.beat(&w.laneIn.call, f.Body, laneReply)
			if f.Pooled {
				chunks.PutBuffer(f.Body)
			}
		default:
			err = fmt.Errorf("%w: a %s frame, which only a worker sends", bus.ErrBadPayload, f.Kind)
		}
		if err != nil {
			w.laneStopped(fmt.Errorf("garbage on the lane: %w", err))
			return
		}
		if master := w.laneIn.drain; master != "" && !w.lane.Ready() {
			// The frames already here first: the queue then runs them
			// in one go.
			w.laneIn.drain = ""
			if !w.drainInline(&w.laneRun, master) {
				return // a relief reads the lane now
			}
		}
	}
}

// laneFlushWait bounds Close's wait for the replies queued on the lane
// to be written: an owner that does not read them is not waited for.
const laneFlushWait = 5 * time.Second

// relieveLane starts a new lane reader when the reader has run a queue
// for longer than reliefDelay (see drainInline).
func (w *Worker) relieveLane() {
	w.relieve(&w.laneRun, &w.laneReaders, w.serveLane)
}

// laneStopped ends the lane's reads: a queue the reader started and had
// not run yet goes to a drainer, then laneEnded.
func (w *Worker) laneStopped(err error) {
	if master := w.laneIn.drain; master != "" {
		w.laneIn.drain = ""
		w.spawnDrain(master)
	}
	w.laneEnded(err)
}

// laneEnded handles the end of the lane's reads. The owner letting go of
// it after a detach or persist is answered with a Bye; any other end
// (EOF, garbage) is the owner's death, or as bad: the worker cannot
// answer it any more.
func (w *Worker) laneEnded(err error) {
	if w.laneClosed.Load() {
		return // Close closed it
	}
	if w.persistent.Load() {
		if lane.Ended(err) {
			w.lane.Write(lane.Bye, nil) // NATS carries the owner's calls from now on
			return
		}
		// Let go of already, or going to be: the owner's fate is not ours.
		slog.Warn("processional: the lane to the worker's owner broke", "worker", w.id, "err", err)
		w.lane.Close()
		return
	}
	if !lane.Ended(err) {
		slog.Error("processional: the lane to the worker's owner broke: tearing down", "worker", w.id, "owner", w.owner, "err", err)
	}
	w.lane.Close()
	if w.onLaneLost != nil {
		w.onLaneLost(err)
		return
	}
	w.lapseOnce.Do(func() { close(w.lapsed) })
}

// ownerAlive renews the owner's lease as a large frame of its arrives on
// the lane: a master busy sending one is alive, whatever delays its
// heartbeats.
func (w *Worker) ownerAlive() {
	w.mu.Lock()
	if l := w.leases[w.owner]; l != nil {
		l.last = time.Now()
	}
	w.mu.Unlock()
}
