package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

func strategies(p float64) string {
	return fmt.Sprintf(`{
  "service_strategies": [{
    "service": "sampled", "type": "probabilistic", "param": %v,
    "operation_strategies": [
      {"operation": "GET /sleep", "type": "probabilistic", "param": %v, "latency_threshold_ms": 60},
      {"operation": "GET /echo/", "type": "probabilistic", "param": %v, "latency_threshold_ms": 2000}
    ]
  }],
  "default_strategy": {"type": "probabilistic", "param": 1}
}`, p, p, p)
}

// Root traffic follows the file's rate, errors and slow requests are all
// kept, parents' flags are followed, and a file edit changes the rate
// within seconds, also for SDKs reading the remote sampling endpoint.
func TestSampling(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "strategies.json")
	if err := os.WriteFile(file, []byte(strategies(0.2)), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildApp(t, "httpserver", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	app, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=sampled", "GODEBUG=httpmuxgo121=0"})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	samplingAddr, _ := harness.FreeAddr()
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(app.PID()), "--otlp-endpoint", recv.Addr(), "--otlp-insecure",
		"--sampling-strategies", file, "--sampling-server-addr", samplingAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := remoteRate(t, samplingAddr); got != 0.2 {
		t.Errorf("remote sampling endpoint serves %v, want 0.2", got)
	}

	get := func(path, traceparent string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+app.Addr+path, nil)
		if traceparent != "" {
			req.Header.Set("traceparent", traceparent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	const roots, errs, slow, parents = 400, 15, 5, 20
	for i := 0; i < roots; i++ {
		get(fmt.Sprintf("/echo/root-%d", i), "")
	}
	for i := 0; i < errs; i++ {
		get("/status/500", "")
	}
	for i := 0; i < slow; i++ {
		get("/sleep?ms=100", "")
	}
	sampledParents := map[string]bool{}
	for i := 0; i < parents; i++ {
		tid := randHex(16)
		sampledParents[tid] = true
		get(fmt.Sprintf("/echo/parent-yes-%d", i), "00-"+tid+"-"+randHex(8)+"-01")
		get(fmt.Sprintf("/echo/parent-no-%d", i), "00-"+randHex(16)+"-"+randHex(8)+"-00")
	}
	time.Sleep(4 * time.Second) // the hold window passes, the export flushes

	count := map[string]int{}
	for _, s := range recv.Spans() {
		p, _ := s.Attrs["url.path"].(string)
		switch {
		case len(p) > 10 && p[:11] == "/echo/root-":
			count["root"]++
			// Kept by probability: the threshold is recorded. (The file
			// sets a 2 s latency threshold for these, so a loaded machine
			// cannot make them critical.)
			if s.TraceState != "ot=th:cccd" {
				t.Errorf("kept root span tracestate %q, want ot=th:cccd (p=0.2)", s.TraceState)
			}
		case p == "/status/500":
			count["error"]++
		case p == "/sleep":
			count["slow"]++
		case len(p) > 16 && p[:16] == "/echo/parent-yes":
			count["parent-yes"]++
			if !sampledParents[s.TraceID] {
				t.Errorf("span %s kept in an unknown trace", p)
			}
		case len(p) > 15 && p[:15] == "/echo/parent-no":
			count["parent-no"]++
		}
	}
	// Binomial band, 5 sigma, around 0.2 of the roots.
	mean, sd := roots*0.2, math.Sqrt(roots*0.2*0.8)
	if got := float64(count["root"]); math.Abs(got-mean) > 5*sd {
		t.Errorf("kept %v of %d roots at p=0.2, want %v ± %.0f", got, roots, mean, 5*sd)
	}
	if count["error"] != errs || count["slow"] != slow {
		t.Errorf("kept %d of %d errors and %d of %d slow requests, want all", count["error"], errs, count["slow"], slow)
	}
	if count["parent-yes"] != parents || count["parent-no"] != 0 {
		t.Errorf("sampled parents kept %d of %d, unsampled %d of %d; want all and none", count["parent-yes"], parents, count["parent-no"], parents)
	}

	// Edit the file: the new rate applies within seconds.
	if err := os.WriteFile(file, []byte(strategies(1)), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for remoteRate(t, samplingAddr) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("strategies file edit not applied within 5 s\n%s", agent.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	before := len(recv.Spans())
	for i := 0; i < 50; i++ {
		get(fmt.Sprintf("/echo/after-%d", i), "")
	}
	if _, err := recv.WaitFor(before+50, 10*time.Second); err != nil {
		t.Errorf("after raising the rate to 1: %v", err)
	}
	// A broken file keeps the rate and says so.
	os.WriteFile(file, []byte(`{"service_strategies": [{"service": "sampled", "type": "probabilistic", "param": 7}]}`), 0o644)
	time.Sleep(2500 * time.Millisecond)
	if got := remoteRate(t, samplingAddr); got != 1 {
		t.Errorf("after a broken file the rate is %v, want the previous 1", got)
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if got := scrapeValue(t, text, `golens_sampling_reload_failures_total`); got < 1 {
		t.Errorf("reload failures %v, want >= 1", got)
	}
	if got := scrapeValue(t, text, `golens_sampling_probability{operation="",service_name="sampled"}`); got != 1 {
		t.Errorf("golens_sampling_probability %v, want 1", got)
	}
}

// remoteRate reads the service's probability from the Jaeger endpoint.
func remoteRate(t *testing.T, addr string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/sampling?service=sampled")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		ProbabilisticSampling struct {
			SamplingRate float64 `json:"samplingRate"`
		} `json:"probabilisticSampling"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r.ProbabilisticSampling.SamplingRate
}

// A slow downstream call keeps the request that waited on it: A calls B on
// this node, roots are sampled at 0, and B's server span is over its
// operation's threshold — all three spans arrive, in one trace. An
// incoming "not sampled" flag is overruled the same way.
func TestCriticalPath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "strategies.json")
	os.WriteFile(file, []byte(`{
  "service_strategies": [{"service": "svc-b", "type": "probabilistic", "param": 0,
    "operation_strategies": [{"operation": "GET /sleep", "type": "probabilistic", "param": 0, "latency_threshold_ms": 50}]}],
  "default_strategy": {"type": "probabilistic", "param": 0}
}`), 0o644)
	s := startSetup(t, harness.Variant{}, true, "--sampling-strategies", file)
	slow := url.QueryEscape("http://" + s.b.Addr + "/sleep?ms=80")
	fast := url.QueryEscape("http://" + s.b.Addr + "/echo/fast")

	// Healthy traffic at p=0: nothing kept.
	for i := 0; i < 5; i++ {
		s.get(t, "/chain?to="+fast, "", 200)
	}
	for _, tp := range []string{"", "00-" + randHex(16) + "-" + randHex(8) + "-00"} {
		before := len(s.recv.Spans())
		s.get(t, "/chain?to="+slow, tp, 200)
		spans, err := s.recv.WaitFor(before+3, 10*time.Second)
		if err != nil {
			t.Fatalf("traceparent %q: %v\n%s", tp, err, s.agent.Log())
		}
		got := byTrace(spans[before:])
		if len(got) != 1 {
			t.Errorf("traceparent %q: kept spans in %d traces, want 1", tp, len(got))
		}
		for _, sp := range spans[before:] {
			if p, _ := sp.Attrs["url.path"].(string); p == "/echo/fast" {
				t.Errorf("a healthy span was kept: %s", p)
			}
		}
	}
	time.Sleep(2500 * time.Millisecond)
	for _, sp := range s.recv.Spans() {
		if p, _ := sp.Attrs["url.path"].(string); p == "/echo/fast" || sp.Attrs["url.full"] == "http://"+s.b.Addr+"/echo/fast" {
			t.Errorf("healthy span kept at p=0: %s %v", sp.Name, sp.Attrs["url.path"])
		}
	}
}
