package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The local pairs need no child process: measure them for real, briefly.
func TestRunLocalPairs(t *testing.T) {
	rows, err := Run(context.Background(), Options{Only: []string{"goroutine_task", "thread_invoke"}, Rounds: 1, Scale: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, r := range rows {
		names = append(names, r.Name)
		if r.Value <= 0 || r.BaselineValue <= 0 || r.Ratio != r.Value/r.BaselineValue {
			t.Errorf("row %+v: want positive figures and ratio = value / baseline_value", r)
		}
	}
	if got := strings.Join(names, ","); got != "goroutine_chan,goroutine_task,locked_thread_chan,thread_invoke" {
		t.Fatalf("rows %s", got)
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, rows); err != nil {
		t.Fatal(err)
	}
	var first map[string]any
	if err := json.Unmarshal(bytes.SplitN(buf.Bytes(), []byte("\n"), 2)[0], &first); err != nil || len(first) != 6 {
		t.Fatalf("JSON row %s: %v", buf.String(), err)
	}
	buf.Reset()
	WriteTable(&buf, rows)
	if !strings.Contains(buf.String(), "≤ 3") {
		t.Fatalf("table lacks the goals:\n%s", buf.String())
	}
}

func TestUnknownRow(t *testing.T) {
	_, err := Run(context.Background(), Options{Only: []string{"nope"}})
	if err == nil || !strings.Contains(err.Error(), `unknown row "nope"`) || !strings.Contains(err.Error(), "invoke_rtt") {
		t.Fatalf("err = %v, want it to name the row and list the known ones", err)
	}
}
