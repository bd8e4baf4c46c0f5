// Command processional-worker is a worker-only binary: it serves the
// builtin functions, and links no nats-server, so that it stays about half
// the size of the processional binary and a few MB smaller in memory.
//
//	processional-worker [--nats URL] [--token T | --creds F] [--id ID] [--pool NAME]
//
// It joins a NATS server (or cluster) as a worker, with the flags and
// environment of `processional worker`; spawned by a master
// (master.WithBinary), it is that master's worker. It is also the model
// of a lean worker binary of your own: import worker, bus and your
// functions, and nothing that starts a server.
package main

import (
	"os"

	"github.com/processional/processional/internal/cli"
	"github.com/processional/processional/worker"

	_ "github.com/processional/processional/builtin" // the functions every processional worker serves
)

func main() {
	if worker.Main() {
		return
	}
	os.Exit(cli.Worker("processional-worker", os.Args[1:]))
}
