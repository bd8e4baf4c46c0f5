package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"reflect"
	"sync"
	"syscall"
)

// processional's own sentinel errors, registered under the names of their
// exported counterparts in package bus (the name travels, not the value).
var (
	ErrUnknownFunction = register("bus.ErrUnknownFunction", "processional: unknown function")
	ErrArgumentType    = register("bus.ErrArgumentType", "processional: wrong argument type")
	ErrResultType      = register("bus.ErrResultType", "processional: wrong result type")
	ErrBadPayload      = register("bus.ErrBadPayload", "processional: undecodable payload")
	ErrProtocolVersion = register("bus.ErrProtocolVersion", "processional: protocol version mismatch")
	ErrEncode          = register("bus.ErrEncode", "processional: cannot encode value")
	ErrPanic           = register("bus.ErrPanic", "processional: panic")
	ErrTooBig          = register("bus.ErrTooBig", "processional: payload too big")
	ErrClosed          = register("bus.ErrClosed", "processional: executor closed")
	ErrNotOwner        = register("bus.ErrNotOwner", "processional: not the worker's owner")
	ErrLeaseLapsed     = register("bus.ErrLeaseLapsed", "processional: lease lapsed")
	ErrWorkerLost      = register("bus.ErrWorkerLost", "processional: worker lost")
	ErrOverloaded      = register("bus.ErrOverloaded", "processional: worker overloaded")
	ErrObjectGone      = register("bus.ErrObjectGone", "processional: object gone")
	ErrNoMember        = register("bus.ErrNoMember", "processional: no such method or field")
	ErrNoItem          = register("bus.ErrNoItem", "processional: no such item")
	ErrNotHolder       = register("bus.ErrNotHolder", "processional: reference not held")
	ErrIsStream        = register("bus.ErrIsStream", "processional: a stream called as a function")
	ErrNotStream       = register("bus.ErrNotStream", "processional: a function called as a stream")
)

func register(name, msg string) error { return RegisterError(name, errors.New(msg)) }

// The standard library's sentinels, registered in every binary under the
// names Go code spells them by, so that errors.Is holds for them across
// the wire with no registration by the user. os.ErrNotExist and its
// kin are the same values as fs's, and match under fs's names.
//
// Only names travel: a peer built before one of these was registered
// reads its name and does not match it, and the error is otherwise the
// same. The names of the standard packages (context, errors, io, fs, os,
// net, syscall) and bus are processional's.
func init() {
	for _, s := range []struct {
		name string
		err  error
	}{
		{"context.Canceled", context.Canceled},
		{"context.DeadlineExceeded", context.DeadlineExceeded},
		{"errors.ErrUnsupported", errors.ErrUnsupported},
		{"io.EOF", io.EOF},
		{"io.ErrUnexpectedEOF", io.ErrUnexpectedEOF},
		{"io.ErrClosedPipe", io.ErrClosedPipe},
		{"io.ErrShortWrite", io.ErrShortWrite},
		{"io.ErrShortBuffer", io.ErrShortBuffer},
		{"io.ErrNoProgress", io.ErrNoProgress},
		{"fs.ErrInvalid", fs.ErrInvalid},
		{"fs.ErrPermission", fs.ErrPermission},
		{"fs.ErrExist", fs.ErrExist},
		{"fs.ErrNotExist", fs.ErrNotExist},
		{"fs.ErrClosed", fs.ErrClosed},
		{"os.ErrNoDeadline", os.ErrNoDeadline},
		{"os.ErrDeadlineExceeded", os.ErrDeadlineExceeded},
		{"os.ErrProcessDone", os.ErrProcessDone},
		{"net.ErrClosed", net.ErrClosed},
		// The errnos travel by name, not by number, which differs from
		// one system to another: a worker's ECONNREFUSED is the master's.
		// (Their portable meaning travels anyway: an ENOENT is
		// fs.ErrNotExist, by syscall.Errno's Is.)
		{"syscall.ENOENT", syscall.ENOENT},
		{"syscall.EEXIST", syscall.EEXIST},
		{"syscall.EACCES", syscall.EACCES},
		{"syscall.EPERM", syscall.EPERM},
		{"syscall.ENOTDIR", syscall.ENOTDIR},
		{"syscall.EISDIR", syscall.EISDIR},
		{"syscall.ENOTEMPTY", syscall.ENOTEMPTY},
		{"syscall.ENOSPC", syscall.ENOSPC},
		{"syscall.EINVAL", syscall.EINVAL},
		{"syscall.EINTR", syscall.EINTR},
		{"syscall.EAGAIN", syscall.EAGAIN},
		{"syscall.EPIPE", syscall.EPIPE},
		{"syscall.ECONNREFUSED", syscall.ECONNREFUSED},
		{"syscall.ECONNRESET", syscall.ECONNRESET},
		{"syscall.ECONNABORTED", syscall.ECONNABORTED},
		{"syscall.ETIMEDOUT", syscall.ETIMEDOUT},
		{"syscall.EADDRINUSE", syscall.EADDRINUSE},
	} {
		RegisterError(s.name, s.err)
	}
}

var sentinels struct {
	sync.RWMutex
	byName map[string]error
	names  []string // registration order, for a stable walk
}

// RegisterError registers err under name and returns it. It panics on an
// empty name, a nil or uncomparable error, or a name registered twice for
// two errors (see bus.RegisterError); the same error under the same name
// again is a no-op.
func RegisterError(name string, err error) error {
	if name == "" || err == nil {
		panic("bus: RegisterError needs a name and a non-nil error")
	}
	if !reflect.TypeOf(err).Comparable() {
		panic(fmt.Sprintf("bus: RegisterError: %q: a %T is not comparable: errors.Is cannot match it", name, err))
	}
	sentinels.Lock()
	defer sentinels.Unlock()
	if sentinels.byName == nil {
		sentinels.byName = make(map[string]error)
	}
	if prev, dup := sentinels.byName[name]; dup {
		if prev == err {
			return err
		}
		panic(fmt.Sprintf("bus: RegisterError: %q registered twice, for two errors", name))
	}
	sentinels.byName[name] = err
	sentinels.names = append(sentinels.names, name)
	return err
}

// SentinelNames lists the names of the registered sentinels that err
// matches (errors.Is), in registration order.
func SentinelNames(err error) []string {
	sentinels.RLock()
	defer sentinels.RUnlock()
	var out []string
	for _, name := range sentinels.names {
		if errors.Is(err, sentinels.byName[name]) {
			out = append(out, name)
		}
	}
	return out
}

// IsSentinel reports whether target is registered under one of names.
func IsSentinel(names []string, target error) bool {
	sentinels.RLock()
	defer sentinels.RUnlock()
	for _, name := range names {
		if s, ok := sentinels.byName[name]; ok && s == target {
			return true
		}
	}
	return false
}
