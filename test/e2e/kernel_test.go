package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/golens/golens/probes/kernel"
	"github.com/golens/golens/test/harness"
)

// On this kernel (6.18) the real agent, asked for everything that needs a
// kernel feature (--inject-context), probes every feature golens uses,
// finds each one present, says so in its start-up line and in
// golens_kernel_feature, and traces: an incoming traceparent is continued.
func TestKernelFeatures(t *testing.T) {
	const n = 3
	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	bin := buildApp(t, "httpserver", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	app, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=kernelsvc", "GODEBUG=httpmuxgo121=0"})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(app.PID()), "--inject-context",
		"--otlp-endpoint", recv.Addr(), "--otlp-insecure")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, agent.Log())
	}
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest("GET", "http://"+app.Addr+"/hello", nil)
		req.Header.Set("traceparent", "00-"+traceID+"-"+parent+"-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	spans, err := recv.WaitFor(n, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // nothing more may come
	if spans = recv.Spans(); len(spans) != n {
		t.Fatalf("%d spans, want %d: %+v", len(spans), n, spans)
	}
	for _, s := range spans {
		if s.TraceID != traceID || s.ParentSpanID != parent || s.Kind != tracepb.Span_SPAN_KIND_SERVER {
			t.Errorf("span %s: trace %s parent %s kind %v, want trace %s parent %s, a server span",
				s.Name, s.TraceID, s.ParentSpanID, s.Kind, traceID, parent)
		}
	}

	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(text, "\ngolens_kernel_feature{"); got != len(kernel.Features) {
		t.Errorf("%d golens_kernel_feature series, want one per feature (%d):\n%s", got, len(kernel.Features), text)
	}
	for _, f := range kernel.Features {
		if v := scrapeValue(t, text, fmt.Sprintf(`golens_kernel_feature{feature=%q}`, f.Name)); v != 1 {
			t.Errorf("golens_kernel_feature{feature=%q} = %v on this kernel, want 1", f.Name, v)
		}
	}
	log := agent.Log()
	if !strings.Contains(log, "kernel_missing=[]") || strings.Contains(log, "kernel feature") {
		t.Errorf("start-up log does not say that no kernel feature is missing:\n%s", log)
	}
}
