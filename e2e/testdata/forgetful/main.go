// Command forgetful is a worker binary whose main forgets worker.Main():
// the e2e tests check that a master spawning it gets a clear error and no
// fork bomb. Its first argument picks how it misbehaves.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/processional/processional/master"
)

func main() {
	mode := "exit"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "exit":
		fmt.Println("forgetful: doing my own thing, then exiting")
		os.Exit(1)
	case "hang":
		time.Sleep(time.Hour)
	case "spawn":
		// As a program whose main forgot worker.Main would: it goes on
		// to spawn its own worker.
		s, err := master.Spawn(context.Background())
		if err == nil {
			s.Terminate()
		}
		fmt.Println("forgetful: spawn returned", err)
	}
}
