package serve

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// Progress. A running call's latest report (bus.Progress) is kept for
// the pending verb, and sent to its master at most every
// bus.ProgressEvery: the first at once, the later ones when their time
// comes, the latest winning. Nothing is sent after the call's reply.

// maxProgress bounds a progress report: a bigger one is not sent, and
// the pending verb says why.
const maxProgress = 64 << 10

// progress is a call's progress reports.
type progress struct {
	mu     sync.Mutex
	latest any
	set    bool
	sent   time.Time   // when the last report went
	timer  *time.Timer // the next report's, while one is due
	done   bool        // the call replied: send no more
}

// ReportProgress is bus.Progress for the call's context
// (lazyctx.ProgressReporter).
func (cl *call) ReportProgress(v any) {
	p := &cl.progress
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return
	}
	p.latest, p.set = v, true
	if p.timer != nil {
		p.mu.Unlock() // a report is due: it takes this value
		return
	}
	wait := bus.ProgressEvery - time.Since(p.sent)
	if wait > 0 {
		p.timer = time.AfterFunc(wait, cl.sendProgress)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	cl.sendProgress()
}

// sendProgress sends the latest report to the call's master.
func (cl *call) sendProgress() {
	p := &cl.progress
	p.mu.Lock()
	p.timer = nil
	if p.done || cl.reply == "" {
		p.mu.Unlock()
		return
	}
	v := p.latest
	p.sent = time.Now()
	data, err := wire.AppendProgress(nil, cl.key.id, v)
	if err == nil && len(data) > maxProgress {
		err = fmt.Errorf("%d bytes encoded, over %d", len(data), maxProgress)
	}
	if err != nil {
		p.latest = fmt.Sprintf("progress not sent: %T: %v", v, err)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	cl.w.publish(cl.reply, data)
}

// endProgress stops the call's reports: it is about to reply.
func (cl *call) endProgress() {
	p := &cl.progress
	p.mu.Lock()
	p.done = true
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.mu.Unlock()
}

// latestProgress is the call's latest report as JSON, for the pending
// verb; nil when there is none.
func (cl *call) latestProgress() json.RawMessage {
	p := &cl.progress
	p.mu.Lock()
	v, set := p.latest, p.set
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
