package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/wire"
)

// Connect connects to a persistent worker (a `processional server`, or a
// server.Server) at addr and returns it as a [Slave], like one from
// [Spawn]: the same calls, the same tasks. addr is the server's TCP NATS
// URL ("nats://127.0.0.1:4222", or "127.0.0.1:4222") or its Unix socket
// ("unix:///path/to/socket"); give its token with [WithToken]. WithNATS,
// WithConn and WithServerLogging do not apply, and are refused with
// [ErrConfig].
//
// The master holds its own lease on the server and its own order of
// calls; Close lets the calls sent finish and releases the master's state
// on the server, which goes on serving others. A server that stops
// answering heartbeats for a lease fails the pending calls with
// [bus.ErrWorkerLost]. Each Connect has a master (and connection) of its
// own, closed with the Slave. The server is asked for its hello each
// second until ctx ends, or for 30 s if ctx has no deadline.
func Connect(ctx context.Context, addr string, opts ...Option) (*Slave, error) {
	ctx = orBackground(ctx)
	o, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := o.checkConnect(); err != nil {
		return nil, err
	}
	natsURL, dial, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	extra := []nats.Option{nats.Timeout(timeout)}
	if dial != nil {
		extra = append(extra, nats.SetCustomDialer(dial))
	}
	o.url, o.natsOpt = natsURL, extra
	m, err := start(ctx, o)
	if err != nil {
		return nil, err
	}
	id := o.serverID
	if id == "" {
		id = wire.DefaultServerID
	}
	s, err := m.attach(ctx, id)
	if err != nil {
		m.Close()
		return nil, err
	}
	s.setRelease(m.closeForRelease)
	return s.handle(), nil
}

// parseAddr turns a Connect address into a NATS URL and, for a Unix
// socket, a dialer.
func parseAddr(addr string) (string, nats.CustomDialer, error) {
	if addr == "" {
		return "", nil, fmt.Errorf("%w: empty server address", ErrConfig)
	}
	if strings.HasPrefix(addr, "unix:") {
		u, err := url.Parse(addr)
		if err != nil || (u.Path == "" && u.Opaque == "") {
			return "", nil, fmt.Errorf("%w: server address %q: want unix:///path/to/socket", ErrConfig, addr)
		}
		path := u.Path
		if path == "" {
			path = u.Opaque
		}
		// The URL only names the server for nats.go: the dialer ignores it.
		return "nats://unix-socket:4222", unixDialer{path}, nil
	}
	if !strings.Contains(addr, "://") {
		addr = "nats://" + addr
	}
	if _, err := url.Parse(addr); err != nil {
		return "", nil, fmt.Errorf("%w: server address %q: %v", ErrConfig, addr, err)
	}
	return addr, nil, nil
}

// unixDialer dials a Unix socket whatever address nats.go asks for.
type unixDialer struct{ path string }

func (d unixDialer) Dial(_, _ string) (net.Conn, error) { return net.Dial("unix", d.path) }

// attach makes a slave of the worker id that the master did not spawn: it
// asks for its hello, checks its protocol, and starts heartbeating it.
func (m *Master) attach(ctx context.Context, id string) (*slave, error) {
	if err := m.startSpawn(id); err != nil {
		return nil, err
	}
	defer m.endSpawn(id)
	msg, err := m.askHello(ctx, id)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("%w: no worker %s answers on %s", ErrConnect, id, m.url)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: worker %s: hello: %w", ErrConnect, id, err)
	}
	var h wire.Hello
	if err := codec.Unmarshal(msg.Data, &h); err != nil {
		return nil, fmt.Errorf("%w: worker %s said an undecodable hello: %v", bus.ErrBadPayload, id, err)
	}
	if err := h.Check(); err != nil {
		return nil, err
	}
	s := newSlave(m, id)
	s.pid = h.PID
	s.sameMemory(&h)
	if err := s.subscribe(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConnect, err)
	}
	// The first heartbeat goes before any call, so that the server holds
	// the master's lease from the start.
	if err := m.firstBeat(id, m.lease); err != nil {
		s.unsubscribe()
		return nil, fmt.Errorf("%w: %v", ErrConnect, err)
	}
	s.lastAck.Store(time.Now().UnixNano())
	m.mu.Lock()
	m.slaves[id] = s
	m.mu.Unlock()
	return s, nil
}

// Attaching asks for a worker's hello again every helloRetry, and gives up
// after helloTimeout unless the caller's context has a deadline of its own.
const (
	helloRetry   = time.Second
	helloTimeout = 30 * time.Second
)

// askHello requests worker id's hello. It asks again each helloRetry,
// rather than wait without end: through a route, a request can reach the
// worker while its reply finds no way back (the servers still joining, or
// one restarting), and a reply lost gets no "no responders" either. Every
// ask shares one inbox, so a slow answer to an earlier ask counts too.
func (m *Master) askHello(ctx context.Context, id string) (*nats.Msg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, helloTimeout)
		defer cancel()
	}
	replies := make(chan *nats.Msg, 8)
	inbox := m.nc.NewInbox()
	sub, err := m.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	tick := time.NewTicker(helloRetry)
	defer tick.Stop()
	for {
		if err := m.nc.PublishRequest(wire.ControlSubject(id, "hello"), inbox, nil); err != nil {
			return nil, err
		}
		select {
		case msg := <-replies:
			if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
				return nil, nats.ErrNoResponders
			}
			return msg, nil
		case <-tick.C:
		case <-m.closing:
			return nil, fmt.Errorf("%w: master %s closed", bus.ErrClosed, m.id)
		case <-ctx.Done():
			return nil, fmt.Errorf("no answer, asked each %v: %w", helloRetry, ctx.Err())
		}
	}
}

// stopServer is [Slave.StopServer]: it asks the worker's stop verb and waits for its answer.
func (s *slave) stopServer(ctx context.Context) error {
	msg, err := s.m.nc.RequestWithContext(orBackground(ctx), wire.ControlSubject(s.id, "stop"), nil)
	if err != nil {
		return fmt.Errorf("worker %s: stop: %w", s.id, err)
	}
	if e := msg.Header.Get(micro.ErrorHeader); e != "" {
		return fmt.Errorf("%w: worker %s: stop: %s", ErrBadCall, s.id, e)
	}
	return nil
}
