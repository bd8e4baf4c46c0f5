package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/master"
	"github.com/processional/processional/server"
)

// Sum is registered at package level: the server serves the functions its
// binary registered, and the masters call them by name.
var Sum = bus.Register("server_test.example.sum", func(ctx context.Context, xs []int) (int, error) {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n, nil
})

func ExampleStart() {
	dir, err := os.MkdirTemp("", "processional-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	// A persistent worker with its own NATS server, on a free loopback
	// port and a Unix socket, for any number of masters.
	srv, err := server.Start(server.Options{Socket: filepath.Join(dir, "proc.sock")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close() // lets the running calls finish, then stops

	// Each master that connects holds its own lease and its own order of
	// calls: one over the socket (srv.Addr), one over TCP (srv.URL).
	ctx := context.Background()
	a, err := master.Connect(ctx, srv.Addr(), master.WithToken(srv.Token()))
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := master.Connect(ctx, srv.URL(), master.WithToken(srv.Token()))
	if err != nil {
		a.Close()
		fmt.Println(err)
		return
	}
	defer b.Close()

	x, err := master.Invoke(ctx, a, Sum, []int{1, 2})
	fmt.Println(a.ID(), x, err)

	// One master closing touches no other: the server serves on.
	a.Close()
	y, err := master.Invoke(ctx, b, Sum, []int{3, 4})
	fmt.Println(b.ID(), y, err)
	// Output:
	// server 3 <nil>
	// server 7 <nil>
}
