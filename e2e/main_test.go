//go:build linux

package e2e

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/processional/processional/internal/proctest"
	"github.com/processional/processional/worker"
)

// Binaries built once for the whole package.
var (
	binProcessional string // cmd/processional
	binWorker       string // cmd/processional-worker, beside binProcessional: the bench's lean worker
	binMismatch     string // cmd/processional speaking protocol 99
	binForgetful    string // a worker binary whose main forgets worker.Main
	binHolder       string // a master that spawns a worker and waits to be killed
	binNetmaster    string // a master driven on stdin, for the network namespaces
	binClient       string // a master that connects to a server and waits to be killed
	binFaultmaster  string // a master with a given lease that spawns a worker, prints its pid and waits to be frozen
	binRogue        string // a worker binary that breaks the lane to its master
	binBigflood     string // a master that keeps big values in flight to a worker
)

func TestMain(m *testing.M) {
	// The test binary is a master; were it spawned as a worker, it would
	// serve too.
	if worker.Main() {
		return
	}
	proctest.NoRaceExitSleep()
	dir, err := os.MkdirTemp("", "processional-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		// One go build links the plain binaries in parallel; the one
		// that speaks another protocol needs linker flags of its own.
		race := []string{}
		if raceEnabled { // the processes the tests start are checked as the tests are
			race = append(race, "-race")
		}
		plain := map[*string]string{
			&binProcessional: "processional", &binWorker: "processional-worker",
			&binForgetful: "forgetful", &binHolder: "holder", &binClient: "client",
			&binNetmaster: "netmaster", &binFaultmaster: "faultmaster", &binRogue: "rogue",
			&binBigflood: "bigflood",
		}
		for out, name := range plain {
			*out = filepath.Join(dir, name)
		}
		binMismatch = filepath.Join(dir, "processional-v99")
		for _, args := range [][]string{
			append(append([]string{"build", "-o", dir + string(filepath.Separator)}, race...),
				"../cmd/processional", "../cmd/processional-worker", "./testdata/forgetful", "./testdata/holder",
				"./testdata/client", "./testdata/netmaster", "./testdata/faultmaster", "./testdata/rogue",
				"./testdata/bigflood"),
			append(append([]string{"build", "-o", binMismatch}, race...),
				"-ldflags=-X github.com/processional/processional/internal/wire.protocolOverride=99", "../cmd/processional"),
		} {
			cmd := exec.Command("go", args...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n", strings.Join(args, " "), err)
				return 1
			}
		}
		return m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: goroutines leaked: %v\n", err)
			code = 1
		}
	}
	if code == 0 {
		if left := proctest.Under(dir); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "e2e: processes outlived the tests: %v\n", left)
			code = 1
		}
	}
	os.Exit(code)
}

// The binaries TestMain built have the race detector when the tests do.
func TestBinariesRace(t *testing.T) {
	for _, bin := range []string{binProcessional, binMismatch, binForgetful, binHolder, binNetmaster, binClient, binFaultmaster, binWorker, binRogue, binBigflood} {
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		race := false
		for _, s := range info.Settings {
			race = race || s.Key == "-race" && s.Value == "true"
		}
		if race != raceEnabled {
			t.Errorf("%s: built with -race %v, the tests %v", filepath.Base(bin), race, raceEnabled)
		}
	}
}

// testCtx is a context that ends with the test, or after a minute.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
