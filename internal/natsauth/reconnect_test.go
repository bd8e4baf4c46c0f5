package natsauth

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestReconnect(t *testing.T) {
	var o nats.Options
	for _, opt := range Reconnect() {
		if err := opt(&o); err != nil {
			t.Fatal(err)
		}
	}
	if o.MaxReconnect != -1 || o.ReconnectWait != ReconnectWait || o.ReconnectJitter != ReconnectWait/2 || o.ReconnectJitterTLS != ReconnectWait {
		t.Fatalf("max %d, wait %s, jitter %s, TLS jitter %s; want reconnects without end every %s", o.MaxReconnect, o.ReconnectWait, o.ReconnectJitter, o.ReconnectJitterTLS, ReconnectWait)
	}
}

func TestErrorHandler(t *testing.T) {
	var said []string
	warn := func(msg string, args ...any) { said = append(said, msg+fmt.Sprint(args...)) }
	h := ErrorHandler(warn, "master", "m-1")
	h(nil, &nats.Subscription{Subject: "proc.w.call"}, fmt.Errorf("wrapped: %w", nats.ErrSlowConsumer))
	h(nil, nil, errors.New("permissions violation"))
	if len(said) != 2 {
		t.Fatalf("said %q, want two warnings", said)
	}
	for i, words := range [][]string{
		{"slow consumer", "master", "m-1", "subject", "proc.w.call", "wrapped"},
		{"NATS error", "master", "m-1", "permissions violation"},
	} {
		for _, w := range words {
			if !strings.Contains(said[i], w) {
				t.Errorf("warning %d %q does not say %q", i, said[i], w)
			}
		}
	}
	if strings.Contains(said[1], "slow consumer") {
		t.Errorf("an error that is not a slow consumer said as one: %q", said[1])
	}
}

func TestTLSPair(t *testing.T) {
	if err := TLSPair("c.pem", ""); !errors.Is(err, ErrFiles) {
		t.Errorf("a certificate alone: %v, want ErrFiles", err)
	}
	if err := TLSPair("", "k.pem"); !errors.Is(err, ErrFiles) {
		t.Errorf("a key alone: %v, want ErrFiles", err)
	}
	if TLSPair("", "") != nil || TLSPair("c.pem", "k.pem") != nil {
		t.Error("both or neither refused")
	}
}
