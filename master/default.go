package master

import (
	"context"
	"sync"
)

// The shared master serves the package-level [Spawn]: it starts with the
// first slave and closes with the last, so a program that closes its
// slaves leaves nothing running. It is the package's only state.
var shared struct {
	sync.Mutex
	m    *Master
	refs int
}

func acquireShared(ctx context.Context) (*Master, error) {
	shared.Lock()
	defer shared.Unlock()
	if shared.m == nil || shared.m.isClosed() { // none yet, or closed by hand
		m, err := New(ctx)
		if err != nil {
			return nil, err
		}
		shared.m, shared.refs = m, 0
	}
	shared.refs++
	return shared.m, nil
}

// releaseShared drops a reference to m, the shared master when it was
// acquired; the last reference closes it.
func releaseShared(m *Master) {
	shared.Lock()
	defer shared.Unlock()
	if shared.m != m {
		return // closed by hand and replaced since
	}
	shared.refs--
	if shared.refs == 0 {
		shared.m.closeForRelease()
		shared.m = nil
	}
}

// Spawn starts a slave process on the process's shared master, which
// starts an embedded nats-server with the first slave and stops it with
// the last. See [Master.Spawn].
func Spawn(ctx context.Context, opts ...SpawnOption) (*Slave, error) {
	m, err := acquireShared(ctx)
	if err != nil {
		return nil, err
	}
	s, err := m.Spawn(ctx, opts...)
	if err != nil {
		releaseShared(m)
		return nil, err
	}
	s.setRelease(func() { releaseShared(m) })
	return s, nil
}
