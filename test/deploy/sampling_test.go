package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// jaegerSampling is a Jaeger v2 serving remote sampling from a strategies
// file (%s), on an HTTP address of the test's choosing (%s); the pipeline
// is there because a Collector refuses to run without one.
const jaegerSampling = `
service:
  extensions: [jaeger_storage, remote_sampling]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [nop]
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
          max_traces: 10
  remote_sampling:
    file:
      path: %s
    http:
      endpoint: %s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
exporters:
  nop:
`

// samplingFiles are strategies files covering what Jaeger's file provider
// does differently by case, with the services to ask each about ("" is
// the empty service name, "missing" is listed nowhere).
var samplingFiles = []struct {
	name, file string
	services   []string
}{
	{"default with operations", `{
  "default_strategy": {"type": "probabilistic", "param": 0.5,
    "operation_strategies": [
      {"operation": "GET /health", "type": "probabilistic", "param": 0},
      {"operation": "GET /b", "type": "probabilistic", "param": 0.25},
      {"operation": "GET /limited", "type": "ratelimiting", "param": 3}]},
  "service_strategies": [
    {"service": "prob", "type": "probabilistic", "param": 0.1},
    {"service": "prob-ops", "type": "probabilistic", "param": 0.2,
      "operation_strategies": [
        {"operation": "GET /z", "type": "probabilistic", "param": 1},
        {"operation": "GET /b", "type": "probabilistic", "param": 0.75},
        {"operation": "GET /tiny", "type": "probabilistic", "param": 1e-7}]},
    {"service": "rate", "type": "ratelimiting", "param": 7.9},
    {"service": "rate-ops", "type": "ratelimiting", "param": 3,
      "operation_strategies": [
        {"operation": "POST /z", "type": "probabilistic", "param": 0.125},
        {"operation": "GET /b", "type": "ratelimiting", "param": 5}]},
    {"service": "rate-half", "type": "ratelimiting", "param": 0.5},
    {"service": "rate-only-ops", "type": "probabilistic", "param": 0.3,
      "operation_strategies": [{"operation": "GET /q", "type": "ratelimiting", "param": 2}]}
  ]
}`, []string{"prob", "prob-ops", "rate", "rate-ops", "rate-half", "rate-only-ops", "missing", ""}},
	{"default only", `{"default_strategy": {"type": "probabilistic", "param": 0.25}}`,
		[]string{"missing", ""}},
	{"rate-limited default with operations", `{
  "default_strategy": {"type": "ratelimiting", "param": 12,
    "operation_strategies": [{"operation": "a", "type": "probabilistic", "param": 0.5}]},
  "service_strategies": [
    {"service": "prob", "type": "probabilistic", "param": 0.3},
    {"service": "rate", "type": "ratelimiting", "param": 2},
    {"service": "rate-ops", "type": "ratelimiting", "param": 32767,
      "operation_strategies": [{"operation": "b", "type": "probabilistic", "param": 0.000001}]}]
}`, []string{"prob", "rate", "rate-ops", "missing"}},
	{"no default", `{"service_strategies": [
    {"service": "prob-ops", "type": "probabilistic", "param": 0.4,
      "operation_strategies": [{"operation": "a", "type": "probabilistic", "param": 0.9}]},
    {"service": "rate-ops", "type": "ratelimiting", "param": 4,
      "operation_strategies": [{"operation": "a", "type": "ratelimiting", "param": 5}]},
    {"service": "rate", "type": "ratelimiting", "param": 100}]}`,
		[]string{"prob-ops", "rate-ops", "rate", "missing", ""}},
	{"empty file", `{}`, []string{"missing"}},
}

// TestRemoteSamplingMatchesJaeger gives the same strategies files to a real
// Jaeger v2's remote_sampling extension and to the real agent's
// --sampling-server-addr: for every service, golens answers the same bytes
// (so the same strategy) as Jaeger.
func TestRemoteSamplingMatchesJaeger(t *testing.T) {
	j := jaeger(t)
	if why := harness.EBPFUnavailable(); why != "" {
		unavailable(t, "the agent cannot start here: %s", why)
	}
	agent := buildAgent(t, t.TempDir())
	for _, f := range samplingFiles {
		t.Run(f.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "strategies.json")
			if err := os.WriteFile(file, []byte(f.file), 0o644); err != nil {
				t.Fatal(err)
			}
			addrs := make([]string, 3)
			for i := range addrs {
				a, err := harness.FreeAddr()
				if err != nil {
					t.Fatal(err)
				}
				addrs[i] = a
			}
			jaegerHTTP, jaegerOTLP, golensHTTP := addrs[0], addrs[1], addrs[2]
			cfg := filepath.Join(dir, "jaeger.yaml")
			if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerSampling, file, jaegerHTTP, jaegerOTLP), 0o644); err != nil {
				t.Fatal(err)
			}
			start(t, "jaeger", nil, j, "--config="+cfg)
			// No target: the agent only serves the strategies.
			a, err := harness.StartAgent(agent, nil, "--exe", filepath.Join(dir, "no-such-binary"), "--exporter", "console",
				"--sampling-strategies", file, "--sampling-server-addr", golensHTTP)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Stop(5 * time.Second)
			if err := a.WaitReady(20 * time.Second); err != nil {
				t.Fatal(err)
			}
			waitHTTP(t, "http://"+jaegerHTTP+"/sampling?service=x")
			waitHTTP(t, "http://"+golensHTTP+"/sampling?service=x")

			for _, svc := range f.services {
				q := "/sampling?service=" + url.QueryEscape(svc)
				want := sampling(t, "http://"+jaegerHTTP+q)
				got := sampling(t, "http://"+golensHTTP+q)
				var wantV, gotV any
				if err := json.Unmarshal([]byte(want), &wantV); err != nil {
					t.Fatalf("Jaeger's answer for %q is not JSON: %v\n%s", svc, err, want)
				}
				if err := json.Unmarshal([]byte(got), &gotV); err != nil {
					t.Fatalf("golens' answer for %q is not JSON: %v\n%s", svc, err, got)
				}
				if !reflect.DeepEqual(gotV, wantV) {
					t.Errorf("service %q: golens answers\n%s\nJaeger answers\n%s", svc, got, want)
				} else if got != want {
					t.Errorf("service %q: same JSON, other bytes: golens\n%s\nJaeger\n%s", svc, got, want)
				}
			}
			if t.Failed() {
				t.Logf("agent log:\n%s", a.Log())
			}
		})
	}
}

// sampling GETs a remote sampling answer, which must be a 200 in JSON.
func sampling(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %s, Content-Type %q\n%s", u, resp.Status, resp.Header.Get("Content-Type"), b)
	}
	return string(b)
}
