package wire_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/processional/processional/internal/wire"
)

func TestSubjects(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{wire.CallSubject("w-1"), "proc.w-1.call"},
		{wire.HelloSubject("m-1", "w-1"), "proc.master.m-1.hello.w-1"},
		{wire.ReplySubject("m-1", "w-1"), "_INBOX.m-1.w-1"},
		{wire.SubjectPrefix, "proc"},
	} {
		if tc.got != tc.want {
			t.Errorf("subject %q, want %q", tc.got, tc.want)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"w", true},
		{"w-1", true},
		{"W_1-x", true},
		{"0123456789", true},
		{"-", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"w.1", false},
		{"w 1", false},
		{"w*", false},
		{"w>", false},
		{"w/1", false},
		{"é", false},
		{"w\n", false},
		{"w\x00", false},
		{"$SRV", false},
	} {
		if got := wire.ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
		}
		err := wire.CheckID("worker id", tc.id)
		if tc.want && err != nil {
			t.Errorf("CheckID(%q) = %v, want nil", tc.id, err)
		}
		if !tc.want && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("worker id %q: want 1 to 64 letters, digits, '-' or '_'", tc.id))) {
			t.Errorf("CheckID(%q) = %v, want an error naming the worker id and the rule", tc.id, err)
		}
	}
}

func TestNewID(t *testing.T) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	seen := make(map[string]bool)
	for _, prefix := range []string{"w", "m", "pool_1", ""} {
		for range 1000 {
			id := wire.NewID(prefix)
			rest, ok := strings.CutPrefix(id, prefix+"-")
			if !ok || len(rest) != 10 || strings.Trim(rest, alphabet) != "" {
				t.Fatalf("NewID(%q) = %q, want %q-<10 lowercase letters and digits>", prefix, id, prefix)
			}
			if !wire.ValidID(id) {
				t.Fatalf("NewID(%q) = %q is not a valid id", prefix, id)
			}
			if seen[id] {
				t.Fatalf("NewID(%q) returned %q twice", prefix, id)
			}
			seen[id] = true
		}
	}
}
