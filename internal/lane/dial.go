package lane

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/processional/processional/internal/sockets"
)

// A dialled lane is for the systems where a socket cannot be handed down
// to a child: Windows has no socketpair, exec.Cmd's ExtraFiles are not for
// it, and net.FileConn is not implemented there. The master listens on a
// Unix socket in a directory of its own, and the worker dials it first
// thing and presents a key that only its environment holds; the master
// takes the first connection that presents it, and listens no more. From
// then on it is a lane as any other: the same frames, and the same EOF
// when either side dies. Every system has it ($PROCESSIONAL_LANE=dial on
// the others), so that the Linux tests run it too.

// keyLen is the length of a dialled lane's key, in bytes.
const keyLen = 16

// keyWait bounds the wait for a connection's key: a connection that does
// not present one in time is not the worker's. (A variable for a test.)
var keyWait = 10 * time.Second

// Dialled is the master's end of a dialled lane, a [HalfCloser] from the
// start: its reads and writes wait until the worker has dialled (or the
// lane is closed), and a read deadline set meanwhile applies.
type Dialled struct {
	ln   *net.UnixListener
	dir  string // the listener's own directory, removed once accepted or closed
	key  string // hex
	done sync.WaitGroup

	ready  chan struct{} // closed once conn is set, the accept failed, or Close
	mu     sync.Mutex
	vetted *net.UnixConn // the connection whose key accept reads: Close ends the wait
	conn   *net.UnixConn
	err    error     // why there is no conn: the accept failed, or Close
	dl     time.Time // the read deadline set before conn
	dlSet  chan struct{}
}

// Listen makes the master's end of a dialled lane: a Unix socket in a new
// private directory. Hand the worker [Dialled.Addr] and [Dialled.Key].
// The system's lack of Unix sockets is an error wrapping
// errors.ErrUnsupported.
func Listen() (*Dialled, error) {
	var k [keyLen]byte
	if _, err := rand.Read(k[:]); err != nil {
		return nil, fmt.Errorf("lane: key: %w", err)
	}
	dir, err := os.MkdirTemp("", "processional-lane-")
	if err != nil {
		return nil, fmt.Errorf("lane: %w", err)
	}
	path := filepath.Join(dir, "l")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		if sockets.NoUnix(err) {
			return nil, fmt.Errorf("lane: %w: Unix sockets on %s: %v", errors.ErrUnsupported, runtime.GOOS, err)
		}
		return nil, fmt.Errorf("lane: listen: %w", err)
	}
	d := &Dialled{ln: ln, dir: dir, key: hex.EncodeToString(k[:]), ready: make(chan struct{}), dlSet: make(chan struct{})}
	d.done.Add(1)
	go d.accept()
	return d, nil
}

// Addr is the path the worker dials.
func (d *Dialled) Addr() string { return d.ln.Addr().String() }

// Key is what the worker presents, as hex: give it by a way only the
// worker reads (its environment).
func (d *Dialled) Key() string { return d.key }

// accept takes the first connection that presents the key, then listens
// no more.
func (d *Dialled) accept() {
	defer d.done.Done()
	want, _ := hex.DecodeString(d.key)
	for {
		c, err := d.ln.AcceptUnix()
		if err != nil {
			d.settle(nil, fmt.Errorf("lane: the worker never dialled: %w", err))
			return
		}
		d.mu.Lock()
		closed := d.err != nil
		if !closed {
			d.vetted = c
		}
		d.mu.Unlock()
		if closed {
			c.Close()
			continue // the listener is closed too: the accept fails
		}
		got := make([]byte, keyLen)
		c.SetReadDeadline(time.Now().Add(keyWait))
		_, err = io.ReadFull(c, got)
		d.mu.Lock()
		d.vetted = nil
		d.mu.Unlock()
		if err != nil || subtle.ConstantTimeCompare(got, want) != 1 {
			c.Close() // not the worker
			continue
		}
		c.SetReadDeadline(time.Time{})
		d.settle(c, nil)
		return
	}
}

// settle ends the wait for the worker: with its connection, or with why
// there is none.
func (d *Dialled) settle(c *net.UnixConn, err error) {
	d.ln.Close() // removes the socket file
	os.RemoveAll(d.dir)
	d.mu.Lock()
	if d.err != nil { // closed meanwhile
		d.mu.Unlock()
		if c != nil {
			c.Close()
		}
		return
	}
	if c != nil {
		c.SetReadDeadline(d.dl)
	}
	d.conn, d.err = c, err
	d.mu.Unlock()
	close(d.ready)
}

// wait returns the connection once the worker has dialled, or why there
// is none.
func (d *Dialled) wait() (*net.UnixConn, error) {
	<-d.ready
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conn, d.err
}

// Read reads from the worker's connection, once it has dialled; until
// then, a read deadline that passes returns os.ErrDeadlineExceeded.
func (d *Dialled) Read(b []byte) (int, error) {
	for {
		d.mu.Lock()
		if d.conn != nil || d.err != nil {
			c, err := d.conn, d.err
			d.mu.Unlock()
			if err != nil {
				return 0, err
			}
			return c.Read(b)
		}
		dl, changed := d.dl, d.dlSet
		d.mu.Unlock()
		if !dl.IsZero() && !time.Now().Before(dl) {
			return 0, os.ErrDeadlineExceeded
		}
		if !d.waitFor(dl, changed) {
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// waitFor waits until the worker dials, the lane is closed or the read
// deadline changes, and reports true; or until the deadline dl, if any,
// and reports false.
func (d *Dialled) waitFor(dl time.Time, changed <-chan struct{}) bool {
	var timeout <-chan time.Time
	if !dl.IsZero() {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-d.ready:
	case <-changed:
	case <-timeout:
		return false
	}
	return true
}

// Write writes to the worker's connection, once it has dialled.
func (d *Dialled) Write(b []byte) (int, error) {
	c, err := d.wait()
	if err != nil {
		return 0, err
	}
	return c.Write(b)
}

// SyscallConn is the worker's connection's, once it has dialled.
func (d *Dialled) SyscallConn() (syscall.RawConn, error) {
	c, err := d.wait()
	if err != nil {
		return nil, err
	}
	return c.SyscallConn()
}

// CloseWrite closes the write side of the worker's connection, once it
// has dialled.
func (d *Dialled) CloseWrite() error {
	c, err := d.wait()
	if err != nil {
		return err
	}
	return c.CloseWrite()
}

// SetReadDeadline sets the read deadline, on the worker's connection once
// it has dialled.
func (d *Dialled) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		return d.conn.SetReadDeadline(t)
	}
	d.dl = t
	close(d.dlSet) // the Read waiting looks again
	d.dlSet = make(chan struct{})
	return nil
}

// Close closes the lane, or stops listening for the worker: reads and
// writes fail with net.ErrClosed, the worker sees EOF.
func (d *Dialled) Close() error {
	d.mu.Lock()
	c, vetted := d.conn, d.vetted
	first := d.err == nil
	if c == nil && first {
		d.err = net.ErrClosed
	}
	d.mu.Unlock()
	if c == nil && first {
		close(d.ready)
	}
	if vetted != nil {
		vetted.Close() // a connection slow to give its key: not the worker's
	}
	d.ln.Close()
	d.done.Wait()
	os.RemoveAll(d.dir)
	if c != nil {
		return c.Close()
	}
	return nil
}

// Dialled reports whether c is the master's end of a dialled lane.
func (c *Conn) Dialled() bool {
	_, ok := c.c.(*Dialled)
	return ok
}

// Dial is the worker's side of a dialled lane: it connects to addr and
// presents key, and returns the connection, which its children do not
// inherit.
func Dial(addr, key string) (*net.UnixConn, error) {
	k, err := hex.DecodeString(key)
	if err != nil || len(k) != keyLen {
		return nil, fmt.Errorf("lane: a dialled lane's key is %d hex bytes, not %q", keyLen, key)
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		if sockets.NoUnix(err) {
			return nil, fmt.Errorf("lane: %w: Unix sockets on %s: %v", errors.ErrUnsupported, runtime.GOOS, err)
		}
		return nil, fmt.Errorf("lane: dial the master: %w", err)
	}
	if _, err := c.Write(k); err != nil {
		c.Close()
		return nil, fmt.Errorf("lane: present the key: %w", err)
	}
	return c, nil
}
