//go:build linux

package chaos

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
	"github.com/processional/processional/shm"
)

// Unnamed is the kind of an error that no sentinel names: a broken
// promise, for every task must end with its result or a named error.
const Unnamed = "unnamed"

// kinds are the errors a task may end with under the faults the soak
// makes, in the order they are tested: a process killed, stopped or cut
// off, a NATS server restarted, a deadline.
var kinds = []struct {
	name string
	err  error
}{
	{"deadline", context.DeadlineExceeded},
	{"canceled", context.Canceled},
	{"worker_lost", bus.ErrWorkerLost},
	{"lease_lapsed", bus.ErrLeaseLapsed},
	{"closed", bus.ErrClosed},
	{"overloaded", bus.ErrOverloaded},
	{"no_members", master.ErrNoMembers},
	{"object_gone", bus.ErrObjectGone},
	{"connect", master.ErrConnect},
	{"no_responders", nats.ErrNoResponders},
	{"conn_closed", nats.ErrConnectionClosed},
	{"nats_timeout", nats.ErrTimeout},
}

// unexpected are named errors that no fault of the soak explains: each
// is a broken promise too (a payload garbled, a result that is another
// task's, a panic).
var unexpected = []struct {
	name string
	err  error
}{
	{"foreign_buffer", ErrForeignBuffer},
	{"bad_payload", bus.ErrBadPayload},
	{"argument_type", bus.ErrArgumentType},
	{"result_type", bus.ErrResultType},
	{"panic", bus.ErrPanic},
	{"encode", bus.ErrEncode},
	{"too_big", bus.ErrTooBig},
	{"unknown_function", bus.ErrUnknownFunction},
	{"protocol_version", bus.ErrProtocolVersion},
	{"not_holder", bus.ErrNotHolder},
	{"no_member", bus.ErrNoMember},
	{"is_stream", bus.ErrIsStream},
	{"not_stream", bus.ErrNotStream},
	{"bad_call", master.ErrBadCall},
	{"config", master.ErrConfig},
	{"spawn", master.ErrSpawn},
	{"no_hello", master.ErrNoHello},
	{"shm_no_segment", shm.ErrNoSegment},
	{"shm_closed", shm.ErrClosed},
	{"shm_range", shm.ErrRange},
	{"shm_full", shm.ErrFull},
}

// Classify names err's kind: "" for nil, the kind of the first sentinel
// it matches (errors.Is), else [Unnamed]. expected says whether the soak's
// faults explain it.
func Classify(err error) (kind string, expected bool) {
	if err == nil {
		return "", true
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name, true
		}
	}
	for _, k := range unexpected {
		if errors.Is(err, k.err) {
			return k.name, false
		}
	}
	return Unnamed, false
}
