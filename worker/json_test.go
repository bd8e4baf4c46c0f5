package worker_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/micro"

	"github.com/processional/processional/bus"
)

func TestJSONCalls(t *testing.T) {
	h := start(t)
	req := func(function, body string) (string, string, string) {
		t.Helper()
		msg, err := h.nc.Request(bus.JSONSubject(h.id, function), []byte(body), timeout)
		if err != nil {
			t.Fatalf("%s %s: %v", function, body, err)
		}
		return string(msg.Data), msg.Header.Get(micro.ErrorCodeHeader), msg.Header.Get(micro.ErrorHeader)
	}
	if body, code, _ := req("worker_test.sum", "[1,2,3]"); body != "6" || code != "" {
		t.Fatalf("sum [1,2,3] = %s (code %q)", body, code)
	}
	if body, code, _ := req("worker_test.echo", `"hi"`); body != `"hi"` || code != "" {
		t.Fatalf("echo = %s (code %q)", body, code)
	}
	for _, tc := range []struct {
		function, body, code string
		want                 []string
	}{
		{"worker_test.sum", `["a"]`, "400", []string{"wrong argument type", "[]int", "got JSON string"}},
		{"worker_test.sum", `{"x":1}`, "400", []string{"expects []int", "got JSON object"}},
		{"worker_test.sum", `[1,`, "400", []string{"not JSON"}},
		{"worker_test.fail", `3`, "500", []string{"item 3", "failure"}},
		{"worker_test.panic", `"boom"`, "500", []string{"panic: boom"}},
	} {
		body, code, header := req(tc.function, tc.body)
		if code != tc.code {
			t.Errorf("%s %s: code %q, want %q (%s)", tc.function, tc.body, code, tc.code, body)
			continue
		}
		var re bus.RemoteError
		if err := json.Unmarshal([]byte(body), &re); err != nil || re.Worker != h.id || re.Function != tc.function {
			t.Errorf("%s %s: error body %s: %v", tc.function, tc.body, body, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(re.Message, w) && !strings.Contains(re.Stack, w) {
				t.Errorf("%s %s: %q does not say %q", tc.function, tc.body, re.Message, w)
			}
		}
		if header != re.Message {
			t.Errorf("header %q, body message %q", header, re.Message)
		}
	}
}
