// Command rogue is a worker binary that breaks the lane to its master, to
// check how the master takes it. Before worker.Main it takes the lane's
// descriptor from $PROCESSIONAL_WORKER and rewrites that configuration
// without it, so that the worker runtime serves by NATS only and leaves
// the lane alone; the rogue reads the lane itself, answers nothing on it,
// and at the first call frame the master writes there misbehaves as
// $ROGUE_MODE says:
//
//	garbage     a frame of an unknown kind ('X'), the lane left open
//	cutshort    a reply frame's header announcing 1000 bytes, 10 of them, then the lane closed
//	cutheader   3 bytes of a frame's header, then the lane closed
//	toobig      a reply frame's header announcing one byte over the master's limit, the lane left open
//	badreply    a whole reply frame whose envelope does not decode, the lane left open
//	masterkind  a call frame, which only a master sends, the lane left open
//	close       the lane closed, and nothing else
//
// In every mode it then serves on until killed: the master must kill it.
// It prints nothing on stdout; what went wrong goes to stderr, and makes
// it exit with status 3.
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"

	_ "github.com/processional/processional/builtin" // the functions the master calls
	"github.com/processional/processional/internal/lane"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/worker"
)

// EnvMode names the variable that says how the rogue misbehaves.
const EnvMode = "ROGUE_MODE"

// held keeps the lane's file referenced for as long as the process runs:
// unreferenced, a collection would close it, and the modes that leave the
// lane open would close it after all.
var held *os.File

func main() {
	lanes, limit, err := takeLane()
	if err != nil {
		fail(err)
	}
	held = lanes
	mode := os.Getenv(EnvMode)
	go func() {
		if err := misbehave(lanes, mode, limit); err != nil {
			fail(err)
		}
	}()
	if !worker.Main() {
		fail(fmt.Errorf("not spawned as a worker"))
	}
}

// takeLane takes the lane's descriptor out of the worker configuration in
// the environment, and returns it as a file, with the largest frame body
// the master takes (its max value, as handed to the worker, and the
// envelope's overhead).
func takeLane() (*os.File, int, error) {
	cfg, ok, err := wire.WorkerConfigFromEnv()
	if !ok || err != nil {
		return nil, 0, fmt.Errorf("$%s: spawned %v: %v", wire.EnvWorker, ok, err)
	}
	if cfg.Lane <= 0 {
		return nil, 0, fmt.Errorf("spawned without a lane: nothing to break")
	}
	f := os.NewFile(uintptr(cfg.Lane), "lane (the rogue's)")
	cfg.Lane = 0 // the worker runtime leaves it alone
	env, _ := strings.CutPrefix(cfg.Env(), wire.EnvWorker+"=")
	if err := os.Setenv(wire.EnvWorker, env); err != nil {
		return nil, 0, err
	}
	maxValue := cfg.MaxValue
	if maxValue <= 0 {
		return nil, 0, fmt.Errorf("the master gave no max value: cannot tell its limit")
	}
	return f, int(maxValue) + lane.Overhead, nil
}

// misbehave reads the master's frames on l until the first call, then
// breaks the lane as mode says, and returns with the lane in the state
// the mode leaves it in.
func misbehave(l *os.File, mode string, limit int) error {
	var h [5]byte
	for {
		if _, err := io.ReadFull(l, h[:]); err != nil {
			return fmt.Errorf("reading the lane: %w", err)
		}
		if _, err := io.CopyN(io.Discard, l, int64(binary.BigEndian.Uint32(h[:4]))); err != nil {
			return fmt.Errorf("reading the lane: %w", err)
		}
		if h[4] == 'c' {
			break
		}
	}
	var out []byte
	closing := false
	switch mode {
	case "garbage":
		out = frame('X', []byte("sixteen bytes!!!"))
	case "cutshort":
		out = binary.BigEndian.AppendUint32(nil, 1000)
		out = append(out, 'r')
		out = append(out, "ten bytes."...)
		closing = true
	case "cutheader":
		out = []byte{0, 0, 1}
		closing = true
	case "toobig":
		out = binary.BigEndian.AppendUint32(nil, uint32(limit+1))
		out = append(out, 'r')
	case "badreply":
		out = frame('r', []byte("not msgpack at all"))
	case "masterkind":
		out = frame('c', []byte("not for a master"))
	case "close":
		closing = true
	default:
		return fmt.Errorf("$%s=%q: no such mode", EnvMode, mode)
	}
	if _, err := l.Write(out); err != nil {
		return fmt.Errorf("%s: writing on the lane: %w", mode, err)
	}
	if closing {
		return l.Close()
	}
	return nil
}

// frame is a whole lane frame of kind k around body.
func frame(k byte, body []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(append(out, k), body...)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "rogue: %v\n", err)
	os.Exit(3)
}
