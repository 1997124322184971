package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// strategiesFor lists n other services, then "bounded" at probability p.
func strategiesFor(n int, p float64) string {
	var b strings.Builder
	b.WriteString(`{"default_strategy": {"type": "probabilistic", "param": 1}, "service_strategies": [`)
	for i := range n {
		fmt.Fprintf(&b, `{"service": "svc-%05d", "type": "probabilistic", "param": 0.5},`, i)
	}
	fmt.Fprintf(&b, `{"service": "bounded", "type": "probabilistic", "param": %v}]}`, p)
	return b.String()
}

// A cluster-wide strategies file of thousands of services costs one
// golens_sampling_probability series per service this node watches, and
// one that lists more services than the agent keeps is refused on reload:
// the previous strategies stay in force, the refusal is counted and named.
func TestStrategiesFileBounded(t *testing.T) {
	file := strategiesFile(t, strategiesFor(3000, 1))
	app, agent, recv := startWatched(t, []string{"OTEL_SERVICE_NAME=bounded"}, "--sampling-strategies", file)
	send := func(n int) {
		before := len(recv.Spans())
		for i := range n {
			getStatus(t, app, fmt.Sprintf("/echo/bounded-%d", before+i), 200)
		}
		if _, err := recv.WaitFor(before+n, 10*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, agent.Log())
		}
	}
	send(3)
	series := func(text string) []string {
		var out []string
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, "golens_sampling_probability{") {
				out = append(out, l)
			}
		}
		return out
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if got := series(text); len(got) != 1 || got[0] != `golens_sampling_probability{operation="",service_name="bounded"} 1` {
		t.Errorf("%d sampling series, want bounded's only: %.300q", len(got), got)
	}

	// 6000 services, and "bounded" at 0: were it applied, nothing more
	// would be exported.
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(strategiesFor(6000, 0)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(agent.Log(), "sampling strategies not reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("oversized strategies file not refused within 5 s\n%s", agent.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(agent.Log(), "6001 service_strategies, more than 5000") {
		t.Errorf("refusal does not say why:\n%s", agent.Log())
	}
	send(3)
	text, err = agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if got := scrapeValue(t, text, "golens_sampling_reload_failures_total"); got != 1 {
		t.Errorf("golens_sampling_reload_failures_total %v, want 1", got)
	}
	if got := scrapeValue(t, text, `golens_sampling_probability{operation="",service_name="bounded"}`); got != 1 {
		t.Errorf("bounded's probability %v, want the previous 1", got)
	}
}
