package deploy

import (
	"bytes"
	"context"
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

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

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
// Collector between an OTLP sender and a real Jaeger: a span sent to the
// Collector must be found through Jaeger's query API, and a metric on the
// Collector's Prometheus endpoint, labelled with its service.
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

	// What golens sends: spans and metrics over OTLP/gRPC, with its resource.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	service := fmt.Sprintf("deploy-test-%d", time.Now().UnixNano())
	res := resource.NewSchemaless(attribute.String("service.name", service), attribute.String("host.name", "node-1"))
	texp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(collGRPC), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(texp))
	_, span := tp.Tracer("golens").Start(ctx, "GET /checkout")
	traceID := span.SpanContext().TraceID().String()
	span.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("export span to the Collector: %v", err)
	}
	mexp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(collGRPC), otlpmetricgrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rm := metricdata.ResourceMetrics{
		Resource: res,
		ScopeMetrics: []metricdata.ScopeMetrics{{
			Scope: instrumentation.Scope{Name: "golens"},
			Metrics: []metricdata.Metrics{{
				Name: "go_app_http_server_requests",
				Data: metricdata.Sum[int64]{
					Temporality: metricdata.CumulativeTemporality,
					IsMonotonic: true,
					DataPoints: []metricdata.DataPoint[int64]{{
						Attributes: attribute.NewSet(attribute.String("method", "GET"), attribute.String("route", "/checkout"), attribute.String("status_code", "200")),
						StartTime:  now.Add(-time.Minute),
						Time:       now,
						Value:      3,
					}},
				},
			}},
		}},
	}
	if err := mexp.Export(ctx, &rm); err != nil {
		t.Fatalf("export metrics to the Collector: %v", err)
	}
	mexp.Shutdown(ctx)

	// The span, through the batch processor, in Jaeger.
	var found bool
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !found; time.Sleep(250 * time.Millisecond) {
		var got struct {
			Data []struct {
				TraceID string `json:"traceID"`
				Spans   []struct {
					OperationName string `json:"operationName"`
				} `json:"spans"`
			} `json:"data"`
		}
		if getJSON("http://"+jaegerQuery+"/api/traces?service="+service, &got) != nil {
			continue
		}
		for _, tr := range got.Data {
			found = found || (tr.TraceID == traceID && len(tr.Spans) == 1 && tr.Spans[0].OperationName == "GET /checkout")
		}
	}
	if !found {
		t.Errorf("trace %s (service %s) never reached Jaeger through the Collector", traceID, service)
	}

	// The metric, on the Collector's Prometheus endpoint.
	want := `go_app_http_server_requests_total{`
	var text string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		text = getText("http://" + collProm + "/metrics")
		if line := findLine(text, want, `service_name="`+service+`"`); line != "" {
			if !strings.HasSuffix(line, " 3") || !strings.Contains(line, `route="/checkout"`) {
				t.Errorf("metric line %q, want route=/checkout and value 3", line)
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
