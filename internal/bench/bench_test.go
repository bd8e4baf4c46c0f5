package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

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

// A derived row is one side's median against another's, from the same
// rounds, after the timed rows; its baseline is that other side's row.
func TestDerivedRow(t *testing.T) {
	side := func(d time.Duration) func(context.Context, *Env, int) (time.Duration, error) {
		return func(_ context.Context, _ *Env, n int) (time.Duration, error) { return time.Duration(n) * d, nil }
	}
	p := &Pair{
		Name: "measured", Baseline: "base", Unit: "ns/op", N: 10,
		Extra:   []string{"floor", "other"},
		Derived: []Derived{{Name: "measured_vs_floor", Of: "measured", Over: "floor"}},
		base:    side(1000), measure: side(400),
		extra: []func(context.Context, *Env, int) (time.Duration, error){side(250), side(900)},
	}
	if !p.selected([]string{"measured_vs_floor"}) {
		t.Fatal("--only measured_vs_floor leaves out its pair")
	}
	e := NewEnv("")
	defer e.Close()
	rows, err := p.Run(context.Background(), e, 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{Name: "base", Value: 1000, Unit: "ns/op", Baseline: "base", BaselineValue: 1000, Ratio: 1},
		{Name: "measured", Value: 400, Unit: "ns/op", Baseline: "base", BaselineValue: 1000, Ratio: 0.4},
		{Name: "floor", Value: 250, Unit: "ns/op", Baseline: "base", BaselineValue: 1000, Ratio: 0.25},
		{Name: "other", Value: 900, Unit: "ns/op", Baseline: "base", BaselineValue: 1000, Ratio: 0.9},
		{Name: "measured_vs_floor", Value: 400, Unit: "ns/op", Baseline: "floor", BaselineValue: 250, Ratio: 1.6},
	}
	if !slices.Equal(rows, want) {
		t.Fatalf("rows\n%v\nwant\n%v", rows, want)
	}
	p.Derived[0].Over = "nope"
	if _, err := p.Run(context.Background(), e, 1, 10); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("a derived row over no side: err = %v", err)
	}
}
