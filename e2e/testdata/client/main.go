// Command client is a master that connects to a processional server
// (its first argument is the address, its second the token), sets a long
// call running there, keeps three objects there, reads one item of an
// endless stream there and no more, prints its master id, and waits to
// be killed.
package main

import (
	"context"
	"fmt"
	"iter"
	"math"
	"os"
	"runtime"
	"time"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/master"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: client ADDR TOKEN")
		os.Exit(2)
	}
	ctx := context.Background()
	s, err := master.Connect(ctx, os.Args[1], master.WithToken(os.Args[2]))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	master.Thread(ctx, s, builtin.Sleep, time.Hour)
	if _, err := master.Invoke(ctx, s, builtin.Getpid, struct{}{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var refs []*master.Ref
	for i := range 3 {
		r, err := master.Wrap(ctx, s, builtin.NewCounter, int64(i))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		refs = append(refs, r)
	}
	next, stop := iter.Pull2(master.Stream(ctx, s, builtin.Count, math.MaxInt))
	defer stop()
	if _, err, _ := next(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(s.Master().ID())
	defer runtime.KeepAlive(refs)
	time.Sleep(time.Hour)
}
