package wire

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// Subject layout. Every subject a worker serves starts with its id, so that
// `nats sub 'proc.<worker>.>'` shows all of one worker's traffic.
//
//	proc.<worker>.call           calls, cancels, close, detach, persist
//	proc.<worker>.ctl.heartbeat  heartbeats renewing masters' leases
//	proc.master.<master>.…       what a master serves to its workers
//
// Calls, cancels and close travel on one subject on purpose: NATS keeps the
// order of one publisher's messages on one subscription, so a cancel never
// overtakes the call it cancels and a close never overtakes queued calls.
const (
	// SubjectPrefix starts every subject processional uses.
	SubjectPrefix = "proc"
)

// DefaultServerID is the worker id of a server (package server) unless
// told otherwise: masters that connect with no id call proc.server.…
const DefaultServerID = "server"

// CallSubject is the subject on which worker id receives calls, cancels and
// close requests.
func CallSubject(worker string) string { return SubjectPrefix + "." + worker + ".call" }

// JSONSubject is the subject on which worker serves function with JSON
// bodies, for the nats CLI: `nats req proc.<worker>.json.sum '[1,2,3]'`.
func JSONSubject(worker, function string) string {
	return SubjectPrefix + "." + worker + ".json." + function
}

// PoolJSONSubject is the subject on which the members of pool serve
// function with JSON bodies, in a queue group: one member answers.
func PoolJSONSubject(pool, function string) string {
	return SubjectPrefix + ".pool." + pool + ".json." + function
}

// HeartbeatSubject is the subject on which worker id receives the
// heartbeats that renew its masters' leases. It is apart from the call
// subject so that a heartbeat never waits behind a backlog of calls.
func HeartbeatSubject(worker string) string {
	return SubjectPrefix + "." + worker + ".ctl.heartbeat"
}

// ControlSubject is the subject of one of worker id's control verbs:
// "hello" (its Hello, msgpack), "leases" (its masters' leases, JSON),
// "stop" (a server stops after its running calls).
func ControlSubject(worker, verb string) string {
	return SubjectPrefix + "." + worker + ".ctl." + verb
}

// HeartbeatReplySubject is the subject on which a master receives its
// workers' heartbeat acknowledgements, apart from its replies for the same
// reason.
func HeartbeatReplySubject(master string) string { return "_INBOX." + master + ".hb" }

// HelloSubject is the subject on which a master waits for the hello of the
// worker it spawned.
func HelloSubject(master, worker string) string {
	return SubjectPrefix + ".master." + master + ".hello." + worker
}

// ReplySubject is the subject on which a master receives the replies of
// one worker; each reply names the call it answers.
func ReplySubject(master, worker string) string {
	return "_INBOX." + master + "." + worker
}

// ValidID reports whether id can be used as a worker or master id: one
// subject token of letters, digits, '-' and '_'.
func ValidID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	return strings.IndexFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) < 0
}

// CheckID returns nil for a valid id (see [ValidID]), or an error that
// names what the id is for, quotes it and states the rule, for the caller
// to wrap in its own sentinel.
func CheckID(what, id string) error {
	if ValidID(id) {
		return nil
	}
	return fmt.Errorf("%s %q: want 1 to 64 letters, digits, '-' or '_'", what, id)
}

// NewID returns a fresh random id with the given prefix, fit for a subject
// token: prefix + "-" + 10 lowercase letters and digits.
func NewID(prefix string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + "-" + string(b[:])
}

// ProgressHeader, set on a JSON call's request, asks for its progress
// reports (bus.Progress): each then answers as a message with this
// header, before the result or the stream's items that follow it.
// `processional call` asks on a terminal; the nats CLI does not.
const ProgressHeader = "Processional-Progress"
