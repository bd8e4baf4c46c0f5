package serveraddr

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRoundTrip(t *testing.T) {
	for _, a := range []Addr{
		{ID: "server", URL: "nats://127.0.0.1:4222", Socket: "unix:///tmp/s", Token: "tok"},
		{ID: "s2", Socket: "unix:///tmp/s", Token: "tok"},
	} {
		var buf bytes.Buffer
		Write(&buf, a)
		buf.WriteString("whatever follows\n")
		got, err := Read(bufio.NewReader(&buf))
		if err != nil || got != a {
			t.Fatalf("Read(Write(%+v)) = %+v, %v", a, got, err)
		}
	}
	if _, err := Read(bufio.NewReader(strings.NewReader("processional server x\nurl: u\n"))); err == nil {
		t.Fatal("a block with no token was read")
	}
}
