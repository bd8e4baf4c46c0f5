package master

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/server"
)

// block runs until its context ends.
var block = bus.Register("test.review.block", func(ctx context.Context, _ struct{}) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
})

// givenConnSlave starts a worker server, and a master on a connection
// the test made (WithConn) connected to it. Everything is closed when the
// test ends.
func givenConnSlave(t *testing.T, ctx context.Context) (*server.Server, *nats.Conn, *Master, *Slave) {
	t.Helper()
	srv, err := server.Start(server.Options{Socket: filepath.Join(t.TempDir(), "s")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	nc, err := nats.Connect(srv.URL(), nats.Token(srv.Token()), nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	m, err := New(ctx, WithConn(nc), WithToken(srv.Token())) // the token for spawned workers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s, err := m.attach(ctx, "server")
	if err != nil {
		t.Fatal(err)
	}
	return srv, nc, m, &Slave{s}
}

// waitRunning waits until the worker of srv runs a call of function.
func waitRunning(t *testing.T, ctx context.Context, srv *server.Server, function string) {
	t.Helper()
	for {
		for _, p := range srv.Worker().Pending() {
			if p.Function == function && p.State == "running" {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no call of %s runs on the worker: %v", function, srv.Worker().Pending())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// A master on a connection the caller made (WithConn) fails its calls in
// flight when that connection reconnects, as it does on its own.
func TestGivenConnReconnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, nc, _, s := givenConnSlave(t, ctx)
	task := Thread(ctx, s, block, struct{}{})
	waitRunning(t, ctx, srv, block.Name())
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	if _, err := task.Wait(ctx); !errors.Is(err, bus.ErrWorkerLost) {
		t.Fatalf("a call in flight across the given connection's reconnect: %v, want ErrWorkerLost", err)
	}
	// The worker was asked to cancel it, and the slave serves on.
	if n, err := Invoke(ctx, s, echo, 7); n != 7 || err != nil {
		t.Fatalf("after the reconnect: %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// echo returns its argument.
var echo = bus.Register("test.review.echo", func(ctx context.Context, n int) (int, error) { return n, nil })

// halfReply hands s the first of three chunks of the reply to call id.
func halfReply(s *slave, id uint64) {
	data := make([]byte, 100)
	s.replyChunk(&nats.Msg{Data: wire.AppendReplyChunk(nil, &wire.Chunk{ID: id, Count: 3, Total: 300, Data: data})})
}

// joiningLen is how many replies s is joining.
func joiningLen(s *slave) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.joining)
}

// A reply cut off halfway (by a cancel, a reconnect, or the worker's end)
// does not keep its joined part.
func TestHalfJoinedReplyDropped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pending := func(s *slave) uint64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.pending.add(newTask[int]("x"))
	}
	for name, cut := range map[string]func(s *slave, id uint64){
		"cancelled":      func(s *slave, id uint64) { s.cancelCall(id) },
		"reconnect":      func(s *slave, _ uint64) { s.failInFlight(bus.ErrWorkerLost) },
		"worker's epoch": func(s *slave, _ uint64) { s.sawEpoch(1); s.sawEpoch(2) },
		"worker gone":    func(s *slave, _ uint64) { s.markGone() },
	} {
		s := newSlave(m, "w-half-"+name)
		id := pending(s)
		halfReply(s, id)
		if n := joiningLen(s); n != 1 {
			t.Fatalf("%s: joining %d replies after a first chunk, want 1", name, n)
		}
		cut(s, id)
		if n := joiningLen(s); n != 0 {
			t.Errorf("%s: joining %d replies, want none", name, n)
		}
	}
	// The first chunk of a reply nobody waits for starts nothing.
	s := newSlave(m, "w-half-stray")
	halfReply(s, 42)
	if n := joiningLen(s); n != 0 {
		t.Errorf("a stray reply: joining %d replies, want none", n)
	}
}

// A close lost to the master's reconnect goes again: Close returns, for
// a connected worker as for a spawned one. A worker that already forgot
// the master answers a close all the same.
func TestCloseLostToReconnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, nc, m, s := givenConnSlave(t, ctx)
	spawned, err := m.Spawn(ctx, WithoutLane()) // on the lane, a close is not lost but with the worker
	if err != nil {
		t.Fatal(err)
	}
	// Close's requests were lost: the slaves wait, the workers serve on.
	for _, s := range []*Slave{s, spawned} {
		s.mu.Lock()
		s.state = slaveClosing
		s.mu.Unlock()
	}
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Slave{s, spawned} {
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			s.markGone() // for the test's end
			spawned.Terminate()
			t.Fatalf("Close of %s still waits for a worker that never heard the close", s)
		}
	}
	// The same close once more, as if its first answer had been lost.
	data, err := wire.AppendCall(nil, &wire.Call{Kind: wire.KindClose, Master: m.ID(), ID: closeID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := nc.RequestWithContext(ctx, wire.CallSubject("server"), data)
	if err != nil {
		t.Fatalf("a second close: %v", err)
	}
	if id, _, remote, err := wire.DecodeReply(msg.Data); id != closeID || remote != nil || err != nil {
		t.Fatalf("a second close: answer %d, %v, %v; want its acknowledgement", id, remote, err)
	}
}
