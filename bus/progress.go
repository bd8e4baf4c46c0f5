package bus

import (
	"context"
	"time"

	"github.com/processional/processional/internal/lazyctx"
)

// Progress reports v as the progress of the registered function or
// stream that runs under ctx (or a context derived from it): a fraction
// done, a count, a struct, any value that can travel. The latest report
// wins: on a worker it is sent to the caller at most every
// [ProgressEvery], and shown by the worker's pending verb (`processional
// pending`); the caller reads it with master's Task.Progress. Outside a
// task, or when the value cannot travel, Progress does nothing, and it
// never blocks: report as often as is handy.
func Progress(ctx context.Context, v any) {
	if ctx == nil {
		return
	}
	if r, ok := ctx.Value(lazyctx.ProgressKey{}).(lazyctx.ProgressReporter); ok && r != nil {
		r.ReportProgress(v)
	}
}

// ProgressEvery is the most often a task's progress is sent to its
// caller: reports in between replace each other.
const ProgressEvery = 100 * time.Millisecond
