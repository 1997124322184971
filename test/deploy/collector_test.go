package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// TestCollectorConfigValid checks deploy/collector/collector.yaml with a
// real Collector's own validation (Jaeger v2 is an OpenTelemetry Collector
// distribution): every component exists and every setting is one it knows.
// A broken copy must fail, so that a pass means something.
func TestCollectorConfigValid(t *testing.T) {
	j := jaeger(t)
	cfg := filepath.Join(repoRoot(t), "deploy/collector/collector.yaml")
	run(t, "", nil, j, "validate", "--config="+cfg)

	broken := filepath.Join(t.TempDir(), "broken.yaml")
	src := readFile(t, cfg)
	if err := os.WriteFile(broken, []byte(strings.Replace(src, "send_batch_size:", "send_batch_sise:", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runErr("", nil, j, "validate", "--config="+broken); err == nil || !strings.Contains(out, "send_batch_sise") {
		t.Errorf("validate accepted a misspelt setting (err %v):\n%s", err, out)
	}
}

// jaegerBackend is a Jaeger v2 storing traces in memory, on ports of the
// test's choosing (the stock all-in-one config uses fixed ones).
const jaegerBackend = `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 1000
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: %s
    grpc:
      endpoint: %s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`

// TestCollectorPipeline runs deploy/collector/collector.yaml in a real
// Collector between the real agent and a real Jaeger: the span of a
// request golens saw must be found, exactly, through Jaeger's query API,
// and golens' pushed request count on the Collector's Prometheus endpoint,
// labelled with its service.
func TestCollectorPipeline(t *testing.T) {
	j := jaeger(t)
	addrs := make([]string, 6)
	for i := range addrs {
		a, err := harness.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = a
	}
	jaegerOTLP, jaegerQuery, jaegerQueryGRPC := addrs[0], addrs[1], addrs[2]
	collGRPC, collHTTP, collProm := addrs[3], addrs[4], addrs[5]

	backend := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(backend, fmt.Appendf(nil, jaegerBackend, jaegerQuery, jaegerQueryGRPC, jaegerOTLP), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, "jaeger", nil, j, "--config="+backend)
	waitHTTP(t, "http://"+jaegerQuery+"/api/services")

	// The example config as it is, with the listening ports moved and the
	// Collector's own telemetry server off, so that nothing here collides.
	start(t, "collector", []string{"JAEGER_ENDPOINT=" + jaegerOTLP}, j,
		"--config="+filepath.Join(repoRoot(t), "deploy/collector/collector.yaml"),
		"--set=receivers.otlp.protocols.grpc.endpoint="+collGRPC,
		"--set=receivers.otlp.protocols.http.endpoint="+collHTTP,
		"--set=exporters.prometheus.endpoint="+collProm,
		"--set=service.telemetry.metrics.level=none",
	)
	waitHTTP(t, "http://"+collProm+"/metrics")

	// What golens sends: the real agent, watching a real target, exports
	// its spans (gzip-compressed, as across a WAN) and pushes its metrics
	// over OTLP/gRPC to the Collector.
	if why := harness.EBPFUnavailable(); why != "" {
		unavailable(t, "the agent cannot attach here: %s", why)
	}
	work := t.TempDir()
	appBin, err := harness.BuildApp("httpserver", harness.Variant{}, work)
	if err != nil {
		t.Fatal(err)
	}
	service := fmt.Sprintf("deploy-test-%d", time.Now().UnixNano())
	app, err := harness.StartApp(appBin, []string{"OTEL_SERVICE_NAME=" + service})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	agent, err := harness.StartAgent(buildAgent(t, work), nil, "--pid", fmt.Sprint(app.PID()),
		"--otlp-endpoint", collGRPC, "--otlp-insecure", "--otlp-compression", "gzip", "--otlp-metrics", "--otlp-metrics-interval", "1s")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", agent.Log())
		}
		agent.Stop(5 * time.Second)
	}()
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	// A request that continues a known trace, so Jaeger's copy can be
	// checked exactly: same trace, the server span under the caller's.
	const traceID, callerID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("GET", "http://"+app.Addr+"/status/201", nil)
		if i == 0 {
			req.Header.Set("traceparent", "00-"+traceID+"-"+callerID+"-01")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	// The span, through the Collector's batch processor, in Jaeger.
	type jaegerSpan struct {
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
	}
	var span *jaegerSpan
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && span == nil; time.Sleep(250 * time.Millisecond) {
		var got struct {
			Data []struct {
				Spans []jaegerSpan `json:"spans"`
			} `json:"data"`
		}
		if getJSON("http://"+jaegerQuery+"/api/traces/"+traceID, &got) != nil || len(got.Data) != 1 || len(got.Data[0].Spans) != 1 {
			continue
		}
		span = &got.Data[0].Spans[0]
	}
	if span == nil {
		t.Fatalf("trace %s (service %s) never reached Jaeger through the Collector", traceID, service)
	}
	if len(span.References) != 1 || span.References[0].RefType != "CHILD_OF" || span.References[0].SpanID != callerID {
		t.Errorf("span %q references %+v, want CHILD_OF %s", span.OperationName, span.References, callerID)
	}
	tags := map[string]string{}
	for _, tg := range span.Tags {
		tags[tg.Key] = fmt.Sprint(tg.Value)
	}
	if tags["http.response.status_code"] != "201" || tags["url.path"] != "/status/201" || tags["span.kind"] != "server" {
		t.Errorf("span %q tags %v, want a server span of GET /status/201 answered 201", span.OperationName, tags)
	}

	// The metric, on the Collector's Prometheus endpoint.
	want := `go_app_http_server_requests_total{`
	var text string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		text = getText("http://" + collProm + "/metrics")
		if line := findLine(text, want, `service_name="`+service+`"`, `status_code="201"`); line != "" {
			if !strings.HasSuffix(line, " 3") || !strings.Contains(line, `job="golens"`) {
				t.Errorf("metric line %q, want the 3 requests, from job golens", line)
			}
			return
		}
	}
	t.Errorf("no %s...service_name=%q} on the Collector's Prometheus endpoint:\n%s", want, service, text)
}

// start runs a process for the rest of the test, and stops it at the end.
func start(t *testing.T, name string, env []string, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// Jaeger's query service takes 10 s to stop on a signal; nothing
		// here needs a graceful stop.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, log.String())
		}
	})
}

// waitHTTP waits until url answers 200.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatalf("%s did not answer within 30 s", url)
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func getText(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// findLine returns the first line of text holding every part.
func findLine(text string, parts ...string) string {
	for _, line := range strings.Split(text, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return line
		}
	}
	return ""
}
