package master

import (
	"context"
	"fmt"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/serve"
)

// Export puts obj (a pointer to a struct, a map, any value with methods) in
// a table the master serves on its own subjects, and returns a Ref to it:
// passed to a worker, that Ref lets the worker call back into the master.
// The master keeps obj while a Ref to it is open, here or on a worker.
func (m *Master) Export(ctx context.Context, obj any) (*Ref, error) {
	ctx = orBackground(ctx)
	w, err := m.exportServer()
	if err != nil {
		return nil, err
	}
	s, err := m.slaveOf(ctx, w.ID())
	if err != nil {
		return nil, err
	}
	o, err := w.Keep(obj, m.id)
	if err != nil {
		return nil, err
	}
	h := new(Ref)
	s.adopt(h, o, w.Object, nil)
	return h, nil
}

// exportServer returns the worker that serves the master's exports,
// starting it the first time.
func (m *Master) exportServer() (*serve.Worker, error) {
	m.exportMu.Lock()
	defer m.exportMu.Unlock()
	if m.isClosed() {
		return nil, fmt.Errorf("%w: master %s is closed", bus.ErrClosed, m.id)
	}
	if m.exports == nil {
		w, err := serve.Serve(m.nc, serve.Config{ID: m.id + "-exports"})
		if err != nil {
			return nil, err
		}
		m.exports = w
	}
	return m.exports, nil
}
