package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

func init() {
	RegisterError("context.Canceled", context.Canceled)
	RegisterError("context.DeadlineExceeded", context.DeadlineExceeded)
}

var sentinels struct {
	sync.RWMutex
	byName map[string]error
	names  []string // registration order, for a stable walk
}

// RegisterError registers err under name and returns it. It panics on an
// empty name, a nil error or a name registered twice (see bus.RegisterError).
func RegisterError(name string, err error) error {
	if name == "" || err == nil {
		panic("bus: RegisterError needs a name and a non-nil error")
	}
	sentinels.Lock()
	defer sentinels.Unlock()
	if sentinels.byName == nil {
		sentinels.byName = make(map[string]error)
	}
	if _, dup := sentinels.byName[name]; dup {
		panic(fmt.Sprintf("bus: RegisterError: %q registered twice", name))
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
