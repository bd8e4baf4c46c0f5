package bus_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

// ReadConfig reads a file on the worker: a missing one fails with the
// *fs.PathError that os.ReadFile returns.
var ReadConfig = bus.Register("bus_test.example.readConfig", func(ctx context.Context, path string) ([]byte, error) {
	return os.ReadFile(path)
})

// Explode panics on the worker, in explode.
var Explode = bus.Register("bus_test.example.explode", func(ctx context.Context, why string) (int, error) {
	return explode(why)
})

func explode(why string) (int, error) { panic(why) }

// The standard library's sentinels need no registration: a worker's
// *fs.PathError is fs.ErrNotExist (and os.ErrNotExist) on the master.
func ExampleRemoteError() {
	ctx := context.Background()
	s, err := master.Spawn(ctx) // the test binary doubles as the worker
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	_, err = master.Invoke(ctx, s, ReadConfig, "/no/such/config.toml")
	fmt.Println(errors.Is(err, fs.ErrNotExist), errors.Is(err, os.ErrNotExist))
	var re *bus.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re.Type, re.Function)
	}
	// Output:
	// true true
	// *fs.PathError bus_test.example.readConfig
}

// %+v prints a remote panic's message, a blank line and the worker's
// stack, as the runtime prints a panic; %v only the message.
func ExampleRemoteError_Format() {
	ctx := context.Background()
	s, err := master.Spawn(ctx, master.WithID("w-1"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	_, err = master.Invoke(ctx, s, Explode, "boom")
	fmt.Printf("%v\n", err)
	message, stack, _ := strings.Cut(fmt.Sprintf("%+v", err), "\n\n")
	fmt.Println(message)
	fmt.Println(strings.HasPrefix(stack, "goroutine "), strings.Contains(stack, "bus_test.explode("))
	// Output:
	// worker w-1: bus_test.example.explode: panic: boom
	// worker w-1: bus_test.example.explode: panic: boom
	// true true
}

// Logged through log/slog, a remote error is a group of its fields (the
// stack and the time are left out here, for a stable output).
func ExampleRemoteError_LogValue() {
	ctx := context.Background()
	s, err := master.Spawn(ctx, master.WithID("w-1"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	_, err = master.Invoke(ctx, s, Explode, "boom")
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "stack" {
				return slog.Attr{}
			}
			return a
		},
	}))
	logger.Error("call failed", "err", err)
	// Output:
	// level=ERROR msg="call failed" err.message="panic: boom" err.type=*bus.PanicError err.worker=w-1 err.function=bus_test.example.explode err.sentinels=[bus.ErrPanic] err.panic=boom
}

// A panic in this process is a *PanicError, which prints the same way.
func ExamplePanicError_Format() {
	_, err := master.Invoke(context.Background(), master.InGoroutine, Explode, "boom")
	message, stack, _ := strings.Cut(fmt.Sprintf("%+v", err), "\n\n")
	fmt.Printf("%v\n%q\n", err, err)
	fmt.Println(message, strings.HasPrefix(stack, "goroutine "))
	// Output:
	// panic: boom
	// "panic: boom"
	// panic: boom true
}
