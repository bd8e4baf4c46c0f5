package master

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// prefixWriter writes whole lines to w, each prefixed, and keeps the last
// few for error messages. It is what os/exec copies a child's output into.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	part   []byte
	last   []string
}

func newPrefixWriter(w io.Writer, prefix string) *prefixWriter {
	return &prefixWriter{w: w, prefix: prefix}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.part = append(p.part, b...)
			break
		}
		line := append(p.part, b[:i]...)
		p.part = nil
		p.emit(line)
		b = b[i+1:]
	}
	return n, nil
}

func (p *prefixWriter) emit(line []byte) {
	out := make([]byte, 0, len(p.prefix)+len(line)+1)
	out = append(append(append(out, p.prefix...), line...), '\n')
	p.w.Write(out)
	if len(p.last) == 5 {
		p.last = p.last[1:]
	}
	p.last = append(p.last, string(line))
}

// flush writes a last line that had no newline.
func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.part) > 0 {
		p.emit(p.part)
		p.part = nil
	}
}

// tail returns the last lines written.
func (p *prefixWriter) tail() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.last...)
}

// workerComplaint returns the error line worker.Main printed before
// giving up, if any: the process did call worker.Main.
func (s *slave) workerComplaint() string {
	for _, line := range s.stderr.tail() {
		if strings.HasPrefix(line, "processional worker: ") {
			return strings.TrimPrefix(line, "processional worker: ")
		}
	}
	return ""
}

// deniedSubjects reports whether the worker said that the NATS server
// refused it a subscription or a publication.
func (s *slave) deniedSubjects() bool {
	for _, line := range s.stderr.tail() {
		if strings.Contains(line, "ermissions violation") {
			return true
		}
	}
	return false
}

// lastOutput quotes the worker's last lines of stderr and stdout, for an
// error message.
func (s *slave) lastOutput() string {
	lines := append(s.stderr.tail(), s.stdout.tail()...)
	if len(lines) == 0 {
		return ""
	}
	return "; its last output: " + strings.Join(lines, " | ")
}
