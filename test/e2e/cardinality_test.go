package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// A client calling more distinct gRPC methods than the cap (200 per
// service) — unknown ones, which grpc-go answers UNIMPLEMENTED through the
// same handleStream — makes 200 series per side and "other" for the rest,
// counted in golens_label_overflow_total; every call still has its spans.
func TestGRPCMethodLabelsCapped(t *testing.T) {
	const calls, limit = 210, 200
	bin := buildApp(t, "grpcapp", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	bGRPC, _ := harness.FreeAddr()
	b, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=card-b"}, "-grpc-addr", bGRPC)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	a, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=card-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(a.PID()), "--pid", fmt.Sprint(b.PID()),
		"--otlp-endpoint", recv.Addr(), "--otlp-insecure")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	for i := range calls {
		resp, err := http.Get(fmt.Sprintf("http://%s/call?target=%s&method=M%03d", a.Addr, url.QueryEscape(bGRPC), i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("call %d: A answered %d, want 502 (UNIMPLEMENTED)", i, resp.StatusCode)
		}
	}
	// Each call: A's HTTP server span, A's gRPC client span, B's server span.
	if _, err := recv.WaitFor(3*calls, 15*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, agent.Log())
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct{ metric, svc string }{{"go_app_grpc_server_handled_total", "card-b"}, {"go_app_grpc_client_handled_total", "card-a"}} {
		series := 0
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, side.metric+"{") && strings.Contains(l, `service_name="`+side.svc+`"`) {
				series++
			}
		}
		if series != limit+1 {
			t.Errorf("%s of %s: %d series, want %d methods and other", side.metric, side.svc, series, limit)
		}
		for _, s := range []struct {
			labels string
			want   float64
		}{
			{`grpc_code="UNIMPLEMENTED",grpc_method="M000",grpc_service="test.Echo"`, 1},
			{fmt.Sprintf(`grpc_code="UNIMPLEMENTED",grpc_method="M%03d",grpc_service="test.Echo"`, limit-1), 1},
			{`grpc_code="UNIMPLEMENTED",grpc_method="other",grpc_service="other"`, calls - limit},
		} {
			name := side.metric + "{" + s.labels + `,service_name="` + side.svc + `"}`
			if got := scrapeValue(t, text, name); got != s.want {
				t.Errorf("%s = %v, want %v", name, got, s.want)
			}
		}
	}
	if got := scrapeValue(t, text, `golens_label_overflow_total{label="grpc_method"}`); got != 2*(calls-limit) {
		t.Errorf("grpc_method overflow %v, want %d", got, 2*(calls-limit))
	}
}
