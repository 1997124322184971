package e2e

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/golens/golens/sampler"
	"github.com/golens/golens/test/harness"
)

// keepAll keeps every root (so every request is a span to export), with a
// latency threshold no request here reaches and an error ratio no SLA
// breach is judged by: the only critical spans are the 5xx ones.
const keepAll = `{"default_strategy": {"type": "probabilistic", "param": 1,
  "latency_threshold_ms": 10000, "sla_max_error_ratio": 0.9}}`

// strategiesFile writes a Jaeger strategies file for --sampling-strategies.
func strategiesFile(t *testing.T, js string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "strategies.json")
	if err := os.WriteFile(file, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// A collector that slows down: the export queue fills, healthy-path spans
// are thinned level by level (their th raised in tracestate) and every
// critical span (a 5xx) still arrives; every span not exported is counted
// under a reason, so exported + dropped is exactly what was served; and
// once the collector keeps up again the level falls back to 0.
func TestBackpressureKeepsCritical(t *testing.T) {
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	file := strategiesFile(t, keepAll)
	const queue = 1000
	app, agent := startExport(t, recv, "--export-queue-size", fmt.Sprint(queue), "--sampling-strategies", file,
		"--otlp-timeout", "30s")
	get(t, app.Addr, "/hello")
	if _, err := recv.WaitFor(1, 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, agent.Log())
	}

	// Each export now takes 16 s: about 32 spans/s leave (a batch of 512
	// per export). Two clients send as fast as they are answered (about
	// 6,000 requests/s here, over 600 on a loaded machine), one in 500 a
	// 5xx: at level 4 the healthy sixteenth alone (over 35/s) outruns the
	// export, so the queue reaches the top level, where only critical spans
	// get in (12/s or fewer, below what leaves, so none is dropped for a
	// full queue).
	recv.SetDelay(16 * time.Second)
	var (
		mu                sync.Mutex
		healthy, critical int
		stop              = make(chan struct{})
		wg                sync.WaitGroup
	)
	next := func() (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if (healthy+critical)%500 == 499 {
			critical++
			return "/status/500", true
		}
		healthy++
		return fmt.Sprintf("/echo/h-%d", healthy-1), true
	}
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				path, _ := next()
				resp, err := c.Get("http://" + app.Addr + path)
				if err != nil {
					// Counted as served, but not answered: the test
					// cannot tell what the agent saw.
					t.Errorf("GET %s: %v", path, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	// Load until the top level is reached (then a second more), however
	// fast this machine serves; at most 20 s.
	start := time.Now()
	var top time.Time
	for time.Since(start) < 20*time.Second && (top.IsZero() || time.Since(top) < time.Second) {
		time.Sleep(50 * time.Millisecond)
		if top.IsZero() {
			if text, err := agent.Metrics(); err == nil && sumMetric(text, "golens_export_pressure_level") == sampler.DefaultPressureLevels {
				top = time.Now()
			}
		}
	}
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	served := 1 + healthy + critical
	t.Logf("served %d healthy and %d critical requests in %s", healthy, critical, time.Since(start).Round(time.Millisecond))

	// The collector keeps up again: the queue drains, the level returns
	// to 0, and the export is done.
	recv.SetDelay(0)
	var text string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if text, err = agent.Metrics(); err != nil {
			t.Fatal(err)
		}
		dropped := sumMetric(text, "golens_spans_dropped_total")
		if got := len(recv.Spans()); float64(got)+dropped == float64(served) &&
			scrapeValue(t, text, "golens_export_pressure_level") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d spans received, %v dropped, of %d served; pressure level %v\n%s",
				len(recv.Spans()), dropped, served, scrapeValue(t, text, "golens_export_pressure_level"), agent.Log())
		}
	}

	gotCritical, gotHealthy := 0, 0
	allowed := map[string]bool{"ot=th:0": true}
	for k := 1; k < sampler.DefaultPressureLevels; k++ {
		allowed[sampler.ThresholdFor(1/float64(int(1)<<k)).TraceState()] = true
	}
	for _, s := range recv.Spans() {
		p, _ := s.Attrs["url.path"].(string)
		switch {
		case p == "/status/500":
			gotCritical++
			if s.StatusCode != tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("5xx span with status %v", s.StatusCode)
			}
		case strings.HasPrefix(p, "/echo/h-"):
			gotHealthy++
			if !allowed[s.TraceState] {
				t.Errorf("healthy span tracestate %q, want one of %v", s.TraceState, allowed)
				continue
			}
			th, _ := sampler.ParseThreshold(strings.TrimPrefix(s.TraceState, "ot=th:"))
			var id sampler.TraceID
			if b, err := hex.DecodeString(s.TraceID); err == nil && len(b) == len(id) {
				copy(id[:], b)
			}
			if !th.Keep(id) {
				t.Errorf("trace %s exported with %s, which its trace id does not pass", s.TraceID, s.TraceState)
			}
		}
	}
	if gotCritical != critical {
		t.Errorf("%d of %d critical spans arrived, want all", gotCritical, critical)
	}
	thinned := sumMetric(text, "golens_spans_thinned_total")
	backpressure := scrapeValue(t, text, `golens_spans_dropped_total{reason="backpressure"}`)
	full := scrapeValue(t, text, `golens_spans_dropped_total{reason="queue_full"}`)
	if thinned == 0 || thinned != backpressure {
		t.Errorf("golens_spans_thinned_total sums to %v, golens_spans_dropped_total{reason=\"backpressure\"} %v: want the same, above 0", thinned, backpressure)
	}
	if full != 0 {
		t.Errorf("%v spans dropped for a full queue: the healthy ones should have been thinned first", full)
	}
	if gotHealthy >= healthy || float64(gotHealthy)+thinned != float64(healthy) {
		t.Errorf("%d of %d healthy spans arrived, %v thinned: want fewer, and the rest counted", gotHealthy, healthy, thinned)
	}
	for level := 1; level <= sampler.DefaultPressureLevels; level++ {
		series := fmt.Sprintf(`golens_export_pressure_entered_total{level="%d"}`, level)
		if entered := scrapeValue(t, text, series); entered < 1 {
			t.Errorf("%s %v, want every level reached", series, entered)
		}
	}
	log := agent.Log()
	if !strings.Contains(log, "export queue under pressure") || !strings.Contains(log, "export queue pressure over") {
		t.Errorf("no pressure log lines:\n%s", log)
	}
	t.Logf("healthy: %d of %d exported; thinned %v; levels %s", gotHealthy, healthy, thinned, levels(text))
}

// levels lists the golens_spans_thinned_total series, for the test log.
func levels(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "golens_spans_thinned_total{") || strings.HasPrefix(l, "golens_export_pressure_entered_total{") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}
