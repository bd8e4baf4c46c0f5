package master_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
)

func ExampleGo() {
	ctx := context.Background()
	task := master.Go(ctx, func(ctx context.Context) (int, error) { return 6 * 7, nil })
	n, err := task.Wait(ctx)
	fmt.Println(n, err)
	// Output: 42 <nil>
}

func ExampleNewThread() {
	ctx := context.Background()
	th := master.NewThread()
	defer th.Close()
	// Tasks on a slave thread run one after the other, in order.
	a := master.Schedule(ctx, th, Sum, []int{1, 2})
	b := master.Schedule(ctx, th, Sum, []int{3, 4})
	x, _ := a.Wait(ctx)
	y, _ := b.Wait(ctx)
	fmt.Println(x, y)
	// Output: 3 7
}

func ExampleSpawn() {
	// The test binary doubles as its worker: its TestMain starts with
	// `if worker.Main() { return }`.
	ctx := context.Background()
	s, err := master.Spawn(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	n, err := master.Invoke(ctx, s, Sum, []int{1, 2, 3}) // blocking
	fmt.Println(n, err)

	task := master.Schedule(ctx, s, Sum, []int{4, 5}) // background, in order
	n, err = task.Wait(ctx)
	fmt.Println(n, err)

	_, err = master.Invoke(ctx, s, Sum, []int{-1}) // errors.Is survives the trip
	fmt.Println(errors.Is(err, ErrNegative))
	// Output:
	// 6 <nil>
	// 9 <nil>
	// true
}

func ExampleTask_Cancel() {
	ctx := context.Background()
	s, err := master.Spawn(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	task := master.Schedule(ctx, s, Sleep, time.Hour)
	task.Cancel() // the function's context ends on the worker
	_, err = task.Wait(ctx)
	fmt.Println(errors.Is(err, context.Canceled))
	// Output: true
}

func ExampleInvoke_panic() {
	ctx := context.Background()
	_, err := master.Invoke(ctx, master.InGoroutine, Panic, "boom")
	var pe *bus.PanicError
	fmt.Println(errors.Is(err, bus.ErrPanic), errors.As(err, &pe) && pe.Stack != "")
	// Output: true true
}

func ExampleWrap() {
	ctx := context.Background()
	s, err := master.Spawn(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// The counter lives in the worker; the master holds a Ref to it.
	counter, err := master.Wrap(ctx, s, NewCounter, "visits")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer counter.Close()

	n, err := master.Method[int](ctx, counter, "Add", 2).Wait(ctx) // a method, by name
	fmt.Println(n, err)
	name, err := master.Field[string](ctx, counter, "Name") // a field
	fmt.Println(name, err)
	_, err = counter.Call(ctx, "Reset")
	fmt.Println(errors.Is(err, bus.ErrNoMember))
	// Output:
	// 2 <nil>
	// visits <nil>
	// true
}

func ExampleMaster_Export() {
	ctx := context.Background()
	m, err := master.New(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	s, err := m.Spawn(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// The worker calls back into the master's own object.
	notes := &Notes{}
	r, err := m.Export(ctx, notes)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	n, err := master.Invoke(ctx, s, WriteNote, r)
	fmt.Println(n, err, len(notes.Lines))
	// Output: 1 <nil> 1
}
