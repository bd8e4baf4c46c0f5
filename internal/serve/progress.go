package serve

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// Progress. A running call's latest report (bus.Progress) is kept for
// the pending verb, and sent to its caller at most every
// bus.ProgressEvery: the first at once, the later ones when their time
// comes, the latest winning. Nothing is sent after the call's answer.

// maxProgress bounds a progress report: a bigger one is not sent, and
// the pending verb says why.
const maxProgress = 64 << 10

// progress is a call's progress reports.
type progress struct {
	sending sync.Mutex // held while a report is sent, and by end: none goes after it
	mu      sync.Mutex
	latest  any
	seq     uint64      // reports made: the latest's number
	sent    time.Time   // when the last report went, or is to go at once
	timer   *time.Timer // the next report's, while one is due
	done    bool        // the call answered: send no more
}

// progressSender sends a report to the call's caller.
type progressSender interface {
	sendProgress(v any) error
}

// report records v and sends it, now or when its time comes.
func (p *progress) report(v any, s progressSender) {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return
	}
	p.latest = v
	p.seq++
	if p.timer != nil {
		p.mu.Unlock() // a report is due: it takes this value
		return
	}
	if wait := bus.ProgressEvery - time.Since(p.sent); wait > 0 {
		p.timer = time.AfterFunc(wait, func() { p.flush(s) })
		p.mu.Unlock()
		return
	}
	p.sent = time.Now() // a report made meanwhile waits for its time
	p.mu.Unlock()
	p.flush(s)
}

// flush sends the latest report, unless the call answered.
func (p *progress) flush(s progressSender) {
	p.sending.Lock()
	defer p.sending.Unlock()
	p.mu.Lock()
	p.timer = nil
	if p.done {
		p.mu.Unlock()
		return
	}
	v, seq := p.latest, p.seq
	p.sent = time.Now()
	p.mu.Unlock()
	if err := s.sendProgress(v); err != nil {
		p.mu.Lock()
		if p.seq == seq { // no report since: say why this one did not go
			p.latest = fmt.Sprintf("progress not sent: %T: %v", v, err)
		}
		p.mu.Unlock()
	}
}

// end stops the reports: the call is about to answer. It returns once no
// report is being sent.
func (p *progress) end() {
	p.mu.Lock()
	p.done = true
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.mu.Unlock()
	p.sending.Lock() // a report on its way goes before the answer
	p.sending.Unlock()
}

// json is the latest report as JSON, for the pending verb; nil when
// there is none.
func (p *progress) json() json.RawMessage {
	p.mu.Lock()
	v, set := p.latest, p.seq > 0
	p.mu.Unlock()
	if !set {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprintf("%v", v))
	}
	return b
}

// ReportProgress is bus.Progress for a call's context
// (lazyctx.ProgressReporter). A call's reports are made on its first:
// most calls report none, and are the smaller for it.
func (cl *call) ReportProgress(v any) {
	p := cl.progress.Load()
	if p == nil {
		p = new(progress)
		if !cl.progress.CompareAndSwap(nil, p) {
			p = cl.progress.Load() // another report, or the end, came first
		}
	}
	p.report(v, cl)
}

// endProgress ends the call's reports: none goes after its answer.
func (cl *call) endProgress() {
	if !cl.progress.CompareAndSwap(nil, endedProgress) {
		cl.progress.Load().end()
	}
}

// progressJSON is the call's latest report, in JSON; nil if none.
func (cl *call) progressJSON() json.RawMessage {
	if p := cl.progress.Load(); p != nil {
		return p.json()
	}
	return nil
}

// endedProgress stands for the reports of a call that answered before it
// made any: a report made after takes it for done.
var endedProgress = &progress{done: true}

// sendProgress sends a report to the call's master, by the way its
// answer goes.
func (cl *call) sendProgress(v any) error {
	if cl.reply == "" {
		return nil
	}
	data, err := wire.AppendProgress(nil, cl.key.id, v)
	if err == nil && len(data) > maxProgress {
		err = fmt.Errorf("%d bytes encoded, over %d", len(data), maxProgress)
	}
	if err != nil {
		return err
	}
	return cl.w.publish(cl.reply, data)
}

// jsonProgress is a JSON call's progress reports, for a caller that asked
// for them (wire.ProgressHeader).
type jsonProgress struct {
	progress
	req micro.Request
}

// ReportProgress is bus.Progress for the JSON call's context.
func (jp *jsonProgress) ReportProgress(v any) { jp.report(v, jp) }

// sendProgress answers a report, as JSON with ProgressHeader.
func (jp *jsonProgress) sendProgress(v any) error {
	body, err := json.Marshal(v)
	if err == nil && len(body) > maxProgress {
		err = fmt.Errorf("%d bytes of JSON, over %d", len(body), maxProgress)
	}
	if err != nil {
		return err
	}
	return jp.req.Respond(body, micro.WithHeaders(micro.Headers{wire.ProgressHeader: []string{"1"}}))
}
