package natsauth

import (
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// ReconnectWait is how long a connection of the master's, a worker's or
// a command's waits between two attempts to reach its server again
// (nats.go waits 2 s by default): a server that restarts within a lease
// finds them back before their leases lapse.
const ReconnectWait = 100 * time.Millisecond

// Reconnect returns the nats.go options of prompt reconnects without end:
// every [ReconnectWait] or so, jittered, for as long as it takes. The
// leases, not a count of attempts, bound how long masters and workers
// wait for each other; a connection that must give up at some point
// (worker.Main's) adds its own handlers.
func Reconnect() []nats.Option {
	return []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(ReconnectWait),
		nats.ReconnectJitter(ReconnectWait/2, ReconnectWait),
	}
}

// ErrorHandler returns a nats.go handler of asynchronous errors that says
// each with warn (slog.Warn, or a logger's Warn method) instead of letting
// nats.go drop it: a slow consumer (the client dropped messages past a
// subscription's pending limits), a permissions violation, and so on.
// attrs, key and value pairs naming the connection's owner ("master", its
// id), go with each, then the subscription's subject and the error.
func ErrorHandler(warn func(msg string, args ...any), attrs ...any) nats.ErrHandler {
	return func(_ *nats.Conn, sub *nats.Subscription, err error) {
		subject := ""
		if sub != nil {
			subject = sub.Subject
		}
		args := append(append(make([]any, 0, len(attrs)+4), attrs...), "subject", subject, "err", err)
		if errors.Is(err, nats.ErrSlowConsumer) {
			warn("processional: a slow consumer: the NATS client dropped messages", args...)
			return
		}
		warn("processional: NATS error", args...)
	}
}
