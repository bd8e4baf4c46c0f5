// Command bigflood is a master that keeps big values in flight both ways
// to a worker it spawned, so that the e2e tests can kill either side with
// SIGKILL while transient shared-memory segments are being made, sent and
// read, and check that nothing is left in $PROCESSIONAL_SHM_DIR. Its
// workers go without the lane: big values to a spawned worker's lane go
// in its frames, and take no segment.
//
//	bigflood flood          spawn a worker, print its pid once a big value
//	                        went both ways, and flood it until killed
//	bigflood workerkill N   N times: spawn a worker, flood it, kill it with
//	                        SIGKILL mid-flood; every call must end, with
//	                        its result or ErrWorkerLost; then print "ok"
//	bigflood sweep          sweep the segments of dead processes, print "ok"
//	bigflood echo N         spawn a worker on each road (the lane, NATS)
//	                        and echo N bytes to it; print "ok" and how
//	                        many values went in transient segments (by
//	                        NATS: the lane takes them in its frames)
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/master"
	"github.com/processional/processional/shm"
	"github.com/processional/processional/worker"
)

// sizes of the values in flight: around and well past the transient
// threshold.
var sizes = []int{300 << 10, 1 << 20, 3 << 20}

func value(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// flood sends echoes of big values to s from a few goroutines until ctx
// ends or s is lost; first is closed once one came back whole. It
// returns the first error that is not the worker's loss.
func flood(ctx context.Context, s *master.Slave, first chan struct{}) error {
	var (
		wg   sync.WaitGroup
		once sync.Once
		mu   sync.Mutex
		bad  error
	)
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ctx.Err() == nil; i++ {
				v := value(sizes[i%len(sizes)])
				back, err := master.Invoke(ctx, s, builtin.Echo, v)
				switch {
				case errors.Is(err, bus.ErrWorkerLost) || ctx.Err() != nil:
					return
				case err != nil || !bytes.Equal(back, v):
					mu.Lock()
					bad = fmt.Errorf("an echo of %d bytes: %d bytes back, %v", len(v), len(back), err)
					mu.Unlock()
					return
				}
				once.Do(func() { close(first) })
			}
		}()
	}
	wg.Wait()
	return bad
}

func main() {
	if worker.Main() {
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bigflood:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	if len(os.Args) < 2 {
		return fmt.Errorf("usage: bigflood flood | workerkill N | sweep")
	}
	switch os.Args[1] {
	case "sweep":
		if _, err := shm.Sweep(); err != nil {
			return err
		}
		fmt.Println("ok")
		return nil
	case "echo":
		n, err := strconv.Atoi(os.Args[2])
		if err != nil {
			return err
		}
		for _, opts := range [][]master.SpawnOption{nil, {master.WithoutLane()}} {
			s, err := master.Spawn(ctx, opts...)
			if err != nil {
				return err
			}
			v := value(n)
			back, err := master.Invoke(ctx, s, builtin.Echo, v)
			s.Close()
			if err != nil || !bytes.Equal(back, v) {
				return fmt.Errorf("an echo of %d bytes: %d bytes back, %v", n, len(back), err)
			}
		}
		sent, received := codec.TransientCounts()
		fmt.Println("ok", sent, received)
		return nil
	case "flood":
		s, err := master.Spawn(ctx, master.WithoutLane())
		if err != nil {
			return err
		}
		first := make(chan struct{})
		go func() {
			<-first
			fmt.Println(s.PID())
		}()
		return flood(ctx, s, first)
	case "workerkill":
		n, err := strconv.Atoi(os.Args[2])
		if err != nil {
			return err
		}
		m, err := master.New(ctx)
		if err != nil {
			return err
		}
		defer m.Close()
		for i := range n {
			s, err := m.Spawn(ctx, master.WithoutLane())
			if err != nil {
				return err
			}
			first := make(chan struct{})
			done := make(chan error, 1)
			fctx, cancel := context.WithTimeout(ctx, time.Minute)
			go func() { done <- flood(fctx, s, first) }()
			select {
			case <-first:
			case err := <-done:
				cancel()
				return fmt.Errorf("round %d: no value came back before the kill: %v", i, err)
			}
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond) // somewhere mid-transfer
			syscall.Kill(s.PID(), syscall.SIGKILL)
			err = <-done
			timedOut := fctx.Err() != nil
			cancel()
			if err != nil {
				return fmt.Errorf("round %d: %w", i, err)
			}
			if timedOut {
				return fmt.Errorf("round %d: calls still running a minute after the kill", i)
			}
			s.Close()
		}
		fmt.Println("ok")
		return nil
	}
	return fmt.Errorf("unknown mode %q", os.Args[1])
}
