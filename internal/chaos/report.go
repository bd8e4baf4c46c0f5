//go:build linux

package chaos

import (
	"encoding/json"
	"io"
	"sync"
)

// Event is one line a master writes to the orchestrator, JSON.
type Event struct {
	Ev string `json:"ev"` // ready, child, task, stuck, alive, sample, bye, log

	PID int    `json:"pid,omitempty"` // ready, child: the process
	ID  string `json:"id,omitempty"`  // child: the worker's id

	// task, stuck
	Task       uint64 `json:"task,omitempty"`
	Op         string `json:"op,omitempty"`
	Target     string `json:"target,omitempty"`
	Kind       string `json:"kind,omitempty"` // the error's kind, "" when ok
	Expected   bool   `json:"expected,omitempty"`
	Msg        string `json:"msg,omitempty"`
	MS         int64  `json:"ms,omitempty"`
	DeadlineMS int64  `json:"deadline_ms,omitempty"`
	LimitMS    int64  `json:"limit_ms,omitempty"`
	Wrong      bool   `json:"wrong,omitempty"`
	Hung       bool   `json:"hung,omitempty"`
	Idem       bool   `json:"idem,omitempty"` // an idempotent pool Map

	// sample
	Goroutines int    `json:"goroutines,omitempty"`
	Heap       uint64 `json:"heap,omitempty"`
}

// events writes events as JSON lines, one at a time.
type events struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newEvents(w io.Writer) *events { return &events{enc: json.NewEncoder(w)} }

func (e *events) send(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.enc.Encode(ev)
}

// Summary is the JSON line a run ends with.
type Summary struct {
	Seed        int64               `json:"seed"`
	DurationS   float64             `json:"duration_s"`
	Tasks       int                 `json:"tasks"`
	OK          int                 `json:"ok"`
	Errors      map[string]int      `json:"errors"`
	Ops         map[string]int      `json:"ops"`
	Hung        int                 `json:"hung"`
	Wrong       int                 `json:"wrong"`
	Unnamed     int                 `json:"unnamed"`
	Unexpected  int                 `json:"unexpected"`
	IdemFailed  int                 `json:"idem_failed"`
	Crashed     int                 `json:"crashed"`
	Orphans     int                 `json:"orphans"`
	LeakedShm   int                 `json:"leaked_shm"`
	ShmSwept    int                 `json:"shm_swept"`
	WorstFailMS int64               `json:"worst_fail_ms"`
	WorstOverMS int64               `json:"worst_over_deadline_ms"`
	Kills       map[string]int      `json:"kills"`
	NetCut      string              `json:"netcut"` // "on", or why not
	Silent      int                 `json:"silent_masters"`
	Growth      []string            `json:"growth"`
	Samples     map[string][2]int64 `json:"samples"`
	Failures    []string            `json:"failures"`
	OKRun       bool                `json:"pass"`
}
