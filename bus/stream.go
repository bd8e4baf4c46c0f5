package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"sync/atomic"

	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/registry"
)

// StreamFunc is a registered stream: a function that produces many values
// of type T from an argument of type A, handing each to yield. Executors
// run it as they run a [Func], and master.Stream consumes it as an
// iterator, with backpressure, on any of them. A StreamFunc is safe for
// concurrent use.
type StreamFunc[A, T any] struct {
	name string
	fn   func(context.Context, A, func(T) bool) error
}

// Name is the name the stream was registered under.
func (s *StreamFunc[A, T]) Name() string { return s.name }

// Call runs the stream here, in the calling goroutine, handing each item
// to yield. It does not recover panics.
func (s *StreamFunc[A, T]) Call(ctx context.Context, arg A, yield func(T) bool) error {
	return s.fn(ctx, arg, yield)
}

// RegisterStream registers fn, a stream, under name and returns its typed
// handle. fn hands each item to yield, in order; when yield returns false
// the consumer wants no more (it broke out of its loop, or its context
// ended): fn should return, and yield ignores what it is given after
// that, or after fn returned. fn's error, if any, ends the stream after
// the items it yielded.
//
//	var Count = bus.RegisterStream("count", func(ctx context.Context, n int, yield func(int) bool) error {
//		for i := 1; i <= n && yield(i); i++ {
//		}
//		return nil
//	})
//
// It panics at start-up as [Register] does: a nil fn, a name taken or
// malformed, an argument or item type that cannot travel.
func RegisterStream[A, T any](name string, fn func(ctx context.Context, arg A, yield func(T) bool) error) *StreamFunc[A, T] {
	at, it := reflect.TypeFor[A](), reflect.TypeFor[T]()
	name = checkRegistration("RegisterStream", name, fn == nil, fn, at, it, "item", true)
	run := func(ctx context.Context, a A, emit func(any) bool) error {
		var done atomic.Bool // yield may outlive fn, in a goroutine fn left behind
		err := fn(ctx, a, func(v T) bool {
			if done.Load() {
				return false // after a refusal, or after fn returned: ignored
			}
			if !emit(v) {
				done.Store(true)
				return false
			}
			return true
		})
		done.Store(true)
		return err
	}
	registry.AddStream(name, at, it,
		func(ctx context.Context, data []byte, cctx any, emit func(any) bool) error {
			var a A
			if err := codec.UnmarshalWith(data, &a, cctx); err != nil {
				return &registry.DecodeError{Err: err}
			}
			return run(ctx, a, emit)
		},
		func(ctx context.Context, body []byte, emit func(any) bool) error {
			var a A
			if len(bytes.TrimSpace(body)) > 0 {
				if err := json.Unmarshal(body, &a); err != nil {
					return &registry.DecodeError{Err: err}
				}
			}
			return run(ctx, a, emit)
		})
	return &StreamFunc[A, T]{name: name, fn: fn}
}
