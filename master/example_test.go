package master_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/bus"
	"github.com/processional/processional/embedded"
	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/master"
	"github.com/processional/processional/server"
)

// ErrEmpty is registered at package level under a name of its own, so
// that a worker's error that wraps it is still ErrEmpty for errors.Is on
// the master's side.
var ErrEmpty = bus.RegisterError("master_test.example.ErrEmpty", errors.New("empty input"))

// Mean fails with ErrEmpty, wrapped, when it is given nothing.
var Mean = bus.Register("master_test.example.mean", func(ctx context.Context, xs []float64) (float64, error) {
	if len(xs) == 0 {
		return 0, fmt.Errorf("mean: %w", ErrEmpty)
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs)), nil
})

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

func ExampleSchedule() {
	ctx := context.Background()
	s, err := master.Spawn(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// Scheduled tasks are sent at once, without waiting for each other,
	// and run on the worker one after the other, in the order they were
	// scheduled. Append returns what it appended so far.
	var tasks []*master.Task[[]int]
	for i := range 3 {
		tasks = append(tasks, master.Schedule(ctx, s, Append, i))
	}
	for _, task := range tasks {
		fmt.Println(task.Wait(ctx))
	}
	// Output:
	// [0] <nil>
	// [0 1] <nil>
	// [0 1 2] <nil>
}

func ExampleThread() {
	ctx := context.Background()
	s, err := master.Spawn(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// A Thread task runs in a goroutine of its own on the worker, beside
	// its blocking calls: the long nap holds nothing back.
	nap := master.Thread(ctx, s, Sleep, time.Hour)
	n, err := master.Invoke(ctx, s, Sum, []int{1, 2, 3})
	fmt.Println(n, err, nap.Available())

	nap.Cancel()
	_, err = nap.Wait(ctx)
	fmt.Println(errors.Is(err, context.Canceled))
	// Output:
	// 6 <nil> false
	// true
}

func ExampleInvoke_remoteError() {
	ctx := context.Background()
	s, err := master.Spawn(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// Mean fails on the worker with an error wrapping ErrEmpty: it arrives
	// as a *bus.RemoteError, which is still ErrEmpty for errors.Is because
	// both binaries registered it under the same name.
	_, err = master.Invoke(ctx, s, Mean, nil)
	var re *bus.RemoteError
	fmt.Println(errors.Is(err, ErrEmpty), errors.As(err, &re))
	fmt.Println(re.Function, re.Message)
	// Output:
	// true true
	// master_test.example.mean mean: empty input
}

func ExampleConnect() {
	// A persistent worker with a NATS server of its own, here in this
	// process; `processional server` runs one on its own.
	srv, err := server.Start(server.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	ctx := context.Background()
	s, err := master.Connect(ctx, srv.Addr(), master.WithToken(srv.Token()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close() // lets this master's calls finish; the server serves on

	n, err := master.Invoke(ctx, s, Sum, []int{1, 2, 3})
	fmt.Println(s.ID(), n, err)
	// Output: server 6 <nil>
}

func ExampleMaster_Pool() {
	ctx := context.Background()
	m, err := master.New(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	// Two members; `processional worker --pool squares` on other hosts
	// would join them. Hold on to each *Slave until done with the pool:
	// one dropped is closed when it is garbage collected, pool member or
	// not.
	var members []*master.Slave
	defer func() {
		for _, s := range members {
			s.Close()
		}
	}()
	for range 2 {
		s, err := m.Spawn(ctx, master.InPool("squares"))
		if err != nil {
			fmt.Println(err)
			return
		}
		members = append(members, s)
	}
	p, err := m.Pool(ctx, "squares")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	// A call goes to the member with the fewest calls in flight.
	n, err := master.Invoke(ctx, p, Square, 12)
	fmt.Println(p, n, err)

	// Each member is a *Slave too, to pin calls to it.
	one := p.Members()[0]
	n, err = master.Invoke(ctx, one, Square, 3)
	fmt.Println(n, err)
	// Output:
	// pool squares 144 <nil>
	// 9 <nil>
}

func ExampleMap() {
	ctx := context.Background()
	m, err := master.New(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	var members []*master.Slave // held until done: see Master.Pool's example
	defer func() {
		for _, s := range members {
			s.Close()
		}
	}()
	for range 2 {
		s, err := m.Spawn(ctx, master.InPool("map"))
		if err != nil {
			fmt.Println(err)
			return
		}
		members = append(members, s)
	}
	p, err := m.Pool(ctx, "map")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	// The items are spread over the members; the results come back in
	// their order, each with its own error. Square may run twice for an
	// item: Idempotent lets Map send again to another member the items of
	// a member that died.
	res, errs := master.Map(ctx, p, Square, []int{1, 2, -3, 4}, master.Idempotent())
	fmt.Println(res, errs[0], errors.Is(errs[2], ErrNegative))
	// Output: [1 4 0 16] <nil> true
}

func ExampleSlave_Idempotent() {
	ctx := context.Background()
	s, err := master.Spawn(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// Sum is safe to run twice: a call lost when a NATS connection dropped
	// is sent again, instead of failing with bus.ErrWorkerLost.
	n, err := master.Invoke(ctx, s.Idempotent(), Sum, []int{1, 2, 3})
	fmt.Println(n, err)

	// A worker that died is not tried again.
	_, err = master.Invoke(ctx, s.Idempotent(), Exit, 3)
	fmt.Println(errors.Is(err, bus.ErrWorkerLost))
	// Output:
	// 6 <nil>
	// true
}

func ExampleSlave_Detach() {
	ctx := context.Background()
	s, err := master.Spawn(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	nap := master.Schedule(ctx, s, Sleep, 100*time.Millisecond)
	if err := s.Detach(ctx); err != nil {
		fmt.Println(err)
		return
	}
	// Nothing more can be sent, but what was sent runs to the end; then
	// the worker exits on its own.
	_, err = master.Invoke(ctx, s, Sum, []int{1})
	fmt.Println(errors.Is(err, bus.ErrClosed))
	fmt.Println(nap.Wait(ctx))
	<-s.Exited()
	fmt.Println("exited")
	// Output:
	// true
	// slept <nil>
	// exited
}

func ExampleSlave_Persist() {
	// A persistent worker outlives its master, not its NATS server: here
	// one of the program's own.
	srv, err := embedded.Start(embedded.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()

	ctx := context.Background()
	m, err := master.New(ctx, master.WithNATS(srv.URL()), master.WithToken(srv.Token()))
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := m.Spawn(ctx)
	if err != nil {
		fmt.Println(err)
		m.Close()
		return
	}
	pid, id := s.PID(), s.ID()
	if err := s.Persist(ctx); err != nil {
		fmt.Println(err)
		m.Close()
		return
	}
	m.Close() // lets go of the worker, which serves on

	// Another master reaches it by its id.
	c, err := master.Connect(ctx, srv.URL(), master.WithToken(srv.Token()), master.WithServerID(id))
	if err != nil {
		fmt.Println(err)
		kill(pid)
		return
	}
	n, err := master.Invoke(ctx, c, Sum, []int{20, 22})
	fmt.Println(n, err)

	// It serves until it is asked to stop.
	if err := c.StopServer(ctx); err != nil {
		fmt.Println(err)
		kill(pid)
	}
	c.Close()
	proctest.Gone(pid, time.Minute) // until its process is gone
	// Output: 42 <nil>
}

// kill kills process pid, where an example cannot go on.
func kill(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

func ExampleStream() {
	ctx := context.Background()
	s, err := master.Spawn(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	for n, err := range master.Stream(ctx, s, builtin.Count, 1_000_000) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(n)
		if n == 3 {
			break // the worker's producer is cancelled
		}
	}
	// Output:
	// 1
	// 2
	// 3
}

func ExampleTask_Progress() {
	ctx := context.Background()
	task := master.Schedule(ctx, master.InGoroutine, builtin.Work, 50*time.Millisecond)
	<-task.ProgressChanged() // the first report
	var pct int
	ok, err := task.Progress(&pct) // a percentage: builtin.Work's
	fmt.Println(ok, err)
	done, err := task.Wait(ctx)
	fmt.Println(done, err)
	// Output:
	// true <nil>
	// 100 <nil>
}
