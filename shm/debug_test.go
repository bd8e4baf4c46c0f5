package shm

import (
	"os"
	"strconv"
	"testing"
)

func TestDebugKill(t *testing.T) {
	b, _ := New(16)
	name := nameOf(t, b)
	c := startChild(t)
	c.open(name, 0, 16, 0)
	b.Close()
	c.kill()
	s := headerSlots(t, name)
	st, err := os.ReadFile("/proc/" + strconv.Itoa(int(s[0].pid)) + "/stat")
	t.Logf("err %v", err)
	t.Logf("st %q", st)
	t.Logf("startTime %d", startTime(int(s[0].pid)))
	t.Logf("alive %v", alive(int(s[0].pid), s[0].start))
	sweepAll(t)
}
