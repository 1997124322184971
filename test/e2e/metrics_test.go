package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// scrapeValue returns the value of the sample whose name and labels match
// exactly the line prefix given, e.g. `go_app_gc_cycles_total{service_name="x"}`.
func scrapeValue(t *testing.T, text, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %s in metrics:\n%s", series, text)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// After N requests and M forced GCs, the scraped metrics say so, promtool
// finds nothing to criticise, a real Prometheus scrapes the same counts,
// and the span of the request that forced the GCs carries the pause time.
func TestMetricsAndGC(t *testing.T) {
	const n, m = 25, 5
	bin := buildApp(t, "httpserver", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	app, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=gcsvc", "GODEBUG=httpmuxgo121=0"})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(app.PID()), "--otlp-endpoint", recv.Addr(), "--otlp-insecure")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		resp, err := http.Get("http://" + app.Addr + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/gc?n=%d", app.Addr, m))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	spans, err := recv.WaitFor(n+1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if got := scrapeValue(t, text, `go_app_http_server_requests_total{method="GET",route="/hello",service_name="gcsvc",status_code="200"}`); got != n {
		t.Errorf("requests_total %v, want %d", got, n)
	}
	if got := scrapeValue(t, text, `go_app_http_server_request_duration_seconds_count{method="GET",route="/hello",service_name="gcsvc",status_code="200"}`); got != n {
		t.Errorf("duration count %v, want %d", got, n)
	}
	if got := scrapeValue(t, text, `go_app_gc_cycles_total{service_name="gcsvc"}`); got < m {
		t.Errorf("gc cycles %v, want >= %d", got, m)
	}
	if got := scrapeValue(t, text, `go_app_gc_pause_seconds_count{service_name="gcsvc"}`); got < 2*m {
		t.Errorf("gc pauses %v, want >= %d (two per cycle)", got, 2*m)
	}
	if got := scrapeValue(t, text, `go_app_gc_heap_live_bytes{service_name="gcsvc"}`); got <= 0 || got > 1<<30 {
		t.Errorf("heap live %v bytes", got)
	}
	for _, line := range strings.Split(text, "\n") {
		name := strings.SplitN(strings.SplitN(line, "{", 2)[0], " ", 2)[0]
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(name, "go_app_") && !strings.HasPrefix(name, "golens_") {
			t.Errorf("metric %s outside go_app_ and golens_", name)
		}
	}

	// The request that forced the collections shows the paused time.
	var gcSpan *harness.Span
	for i := range spans {
		if spans[i].Attrs["url.path"] == "/gc" {
			gcSpan = &spans[i]
		}
	}
	if gcSpan == nil {
		t.Fatal("no span for /gc")
	}
	paused, _ := gcSpan.Attrs["go.gc.pause_duration"].(float64)
	count, _ := gcSpan.Attrs["go.gc.pause_count"].(int64)
	if paused <= 0 || paused > gcSpan.Duration().Seconds() || count < 2*m {
		t.Errorf("/gc span: go.gc.pause_duration %v s over %d pauses in a %s span; want > 0, within the span, >= %d pauses", paused, count, gcSpan.Duration(), 2*m)
	}

	promtool(t, text)
	prometheusQuery(t, agent.MetricsAddr, `sum(go_app_http_server_requests_total{service_name="gcsvc",route="/hello"})`, n)
}

// promtool checks the exposition format and naming conventions.
func promtool(t *testing.T, text string) {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		unavailable(t, "promtool not installed (Debian package prometheus)")
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// prometheusQuery runs a real Prometheus that scrapes addr every second and
// waits until query returns want.
func prometheusQuery(t *testing.T, addr, query string, want float64) {
	t.Helper()
	if _, err := exec.LookPath("prometheus"); err != nil {
		unavailable(t, "prometheus not installed (Debian package prometheus)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: golens
    static_configs:
      - targets: [%q]
`, addr)), 0o644)
	listen, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("prometheus", "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		resp, err := http.Get("http://" + listen + "/api/v1/query?query=" + url.QueryEscape(query))
		if err != nil {
			continue
		}
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if len(r.Data.Result) == 1 {
			last, _ = r.Data.Result[0].Value[1].(string)
			if v, _ := strconv.ParseFloat(last, 64); v == want {
				return
			}
		}
	}
	t.Errorf("Prometheus query %s: last %q, want %v\n%s", query, last, want, log.String())
}

// With --otlp-metrics the same counts reach an OTLP/gRPC collector.
func TestOTLPMetrics(t *testing.T) {
	const n = 12
	bin := buildApp(t, "httpserver", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	app, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=pushed", "GODEBUG=httpmuxgo121=0"})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(app.PID()), "--otlp-endpoint", recv.Addr(), "--otlp-insecure",
		"--otlp-metrics", "--otlp-metrics-interval", "500ms")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		resp, err := http.Get("http://" + app.Addr + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	labels := map[string]string{"service_name": "pushed", "method": "GET", "route": "/hello", "status_code": "200"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, ok := recv.MetricPoint("go_app_http_server_requests_total", labels)
		if ok && v == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OTLP metric go_app_http_server_requests_total%v = %v (present %v) after %d pushes, want %d", labels, v, ok, recv.MetricPushes(), n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v, ok := recv.MetricPoint("go_app_http_server_request_duration_seconds_count", labels); !ok || v != n {
		t.Errorf("OTLP duration histogram count %v (present %v), want %d", v, ok, n)
	}
}
