package master

import (
	"context"
	"sync"
)

// defaultMaster is the master of the package-level [Spawn] (see there);
// with the function registry, it is the package's only state.
var defaultMaster struct {
	sync.Mutex
	m    *Master
	refs int // the Slaves from Spawn not yet closed
}

// acquireDefault returns the default master, starting one if there is
// none, or the last was closed by hand, and counts one more reference.
func acquireDefault(ctx context.Context) (*Master, error) {
	defaultMaster.Lock()
	defer defaultMaster.Unlock()
	if defaultMaster.m == nil || defaultMaster.m.isClosed() {
		m, err := New(ctx)
		if err != nil {
			return nil, err
		}
		defaultMaster.m, defaultMaster.refs = m, 0
	}
	defaultMaster.refs++
	return defaultMaster.m, nil
}

// releaseDefault drops a reference to m, the default master when it was
// acquired; the last reference closes it.
func releaseDefault(m *Master) {
	defaultMaster.Lock()
	defer defaultMaster.Unlock()
	if defaultMaster.m != m {
		return // closed by hand and replaced since
	}
	defaultMaster.refs--
	if defaultMaster.refs == 0 {
		defaultMaster.m.closeForRelease()
		defaultMaster.m = nil
	}
}

// Spawn starts a worker process, as [Master.Spawn] does, on the package's
// default master, so that a program needs no [Master] of its own.
//
// The default master is an ordinary Master, as New(ctx) makes one: an
// embedded nats-server on a loopback port, with the default lease. The
// first Spawn starts it; each Slave from Spawn holds it, until that Slave
// is closed, terminated or collected, and the last one to let go closes
// it: a program that closes its slaves leaves nothing running. Every
// Slave from Spawn returns it from [Slave.Master]; Close on it closes all
// of them at once, and the next Spawn starts a new default master.
//
// It takes no master options: for a NATS server of your own, another
// lease, or a master that outlives its slaves, call [New] and
// [Master.Spawn], and close that master when done. Spawn is safe for
// concurrent use.
func Spawn(ctx context.Context, opts ...SpawnOption) (*Slave, error) {
	m, err := acquireDefault(ctx)
	if err != nil {
		return nil, err
	}
	s, err := m.Spawn(ctx, opts...)
	if err != nil {
		releaseDefault(m)
		return nil, err
	}
	s.setRelease(func() { releaseDefault(m) })
	return s, nil
}
