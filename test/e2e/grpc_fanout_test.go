package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/golens/golens/test/harness"
)

// Eight gRPC calls at once on one context (an errgroup fan-out with
// r.Context()), unary and streaming, five requests in a row: every call
// has its own client span — its own method, code and timing, under the
// HTTP server span of its request — and B's server span for it lies under
// it. The client side costs two probe hits per unary call and three per
// stream (the stream's context watcher calls finish again), and nothing
// is counted as an orphan.
func TestGRPCFanOutOneContext(t *testing.T) {
	bin := buildApp(t, "grpcapp", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	bGRPC, _ := harness.FreeAddr()
	b, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=grpc-b"}, "-grpc-addr", bGRPC)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	a, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=grpc-a"})
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
	stats, err := harness.RunStats()
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()

	get := func(path, traceparent string) string {
		req, _ := http.NewRequest("GET", "http://"+a.Addr+path, nil)
		if traceparent != "" {
			req.Header.Set("traceparent", traceparent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	// One call first: the connection's set-up is not part of the test.
	get("/call?target="+url.QueryEscape(bGRPC)+"&method=Ok", "")
	if _, err := recv.WaitFor(3, 10*time.Second); err != nil {
		t.Fatalf("warm-up: %v\n%s", err, agent.Log())
	}
	before := len(recv.Spans())
	runsBefore := runCounts(t, agent)

	type rpc struct {
		call, name, status string
		code               int64
		stream             bool
	}
	const requests = 5
	traces := map[string][]rpc{} // trace id -> the calls its request made
	for i := range requests {
		// Distinct methods in one request; Status answers a code of its
		// own in each request.
		code := int64(6 + i)
		rpcs := []rpc{
			{"Ok", "test.Echo/Ok", "OK", 0, false},
			{"Fail", "test.Echo/Fail", "Internal", 13, false},
			{"Missing", "test.Echo/Missing", "NotFound", 5, false},
			{fmt.Sprintf("Status:%d", code), "test.Echo/Status", "", code, false},
			{"Count:3", "test.Echo/Count", "OK", 0, true},
			{"Sum:4", "test.Echo/Sum", "OK", 0, true},
			{"Chat:2", "test.Echo/Chat", "OK", 0, true},
			{"Health", "grpc.health.v1.Health/Check", "OK", 0, false},
		}
		var calls, want []string
		for _, r := range rpcs {
			calls = append(calls, r.call)
			if r.status == "" {
				r.status = fmt.Sprint(statusName[r.code])
			}
			want = append(want, r.status)
		}
		tid := randHex(16)
		traces[tid] = rpcs
		got := get("/fanout?target="+url.QueryEscape(bGRPC)+"&calls="+strings.Join(calls, ","), "00-"+tid+"-"+randHex(8)+"-01")
		if got != strings.Join(want, ",") {
			t.Fatalf("request %d: A answered %q, want %q", i, got, strings.Join(want, ","))
		}
	}
	const perRequest = 1 + 8 + 8
	spans, err := recv.WaitFor(before+requests*perRequest, 15*time.Second)
	if err == nil {
		time.Sleep(time.Second) // and no more than that
		spans = recv.Spans()
	}
	spans = spans[before:]
	if len(spans) != requests*perRequest {
		t.Errorf("%d spans, want %d (%d requests × an HTTP server span, 8 client and 8 server spans)", len(spans), requests*perRequest, requests)
	}

	got := byTrace(spans)
	for tid, rpcs := range traces {
		var httpSrv []harness.Span
		cli, srv := map[string][]harness.Span{}, map[string][]harness.Span{} // by span name
		for _, s := range got[tid] {
			switch {
			case s.Kind == tracepb.Span_SPAN_KIND_CLIENT:
				cli[s.Name] = append(cli[s.Name], s)
			case s.Attrs["rpc.system"] == "grpc":
				srv[s.Name] = append(srv[s.Name], s)
			default:
				httpSrv = append(httpSrv, s)
			}
		}
		if len(httpSrv) != 1 {
			t.Errorf("trace %s: %d HTTP server spans, want 1", tid, len(httpSrv))
			continue
		}
		h := httpSrv[0]
		for _, r := range rpcs {
			if len(cli[r.name]) != 1 || len(srv[r.name]) != 1 {
				t.Errorf("trace %s: %s: %d client and %d server spans, want 1 each", tid, r.call, len(cli[r.name]), len(srv[r.name]))
				continue
			}
			c, s := cli[r.name][0], srv[r.name][0]
			if c.ParentSpanID != h.SpanID || s.ParentSpanID != c.SpanID {
				t.Errorf("trace %s: %s: client's parent %s (want the HTTP span %s), server's %s (want %s)",
					tid, r.call, c.ParentSpanID, h.SpanID, s.ParentSpanID, c.SpanID)
			}
			for _, sp := range []harness.Span{c, s} {
				if sp.Attrs["rpc.grpc.status_code"] != r.code {
					t.Errorf("trace %s: %s: %v span code %v, want %d", tid, r.call, sp.Kind, sp.Attrs["rpc.grpc.status_code"], r.code)
				}
			}
			if c.Start.Before(h.Start) || c.End.After(h.End) || s.Start.Before(c.Start) || s.End.After(c.End) {
				t.Errorf("trace %s: %s: spans not nested: http %v–%v, client %v–%v, server %v–%v",
					tid, r.call, h.Start, h.End, c.Start, c.End, s.Start, s.End)
			}
			if c.Resource["service.name"] != "grpc-a" || s.Resource["service.name"] != "grpc-b" {
				t.Errorf("trace %s: %s: services %v, %v", tid, r.call, c.Resource["service.name"], s.Resource["service.name"])
			}
		}
	}

	runs := runCounts(t, agent)
	var clientRuns uint64
	for name, n := range runs {
		if strings.HasPrefix(name, "uprobe_grpc_cli") {
			clientRuns += n - runsBefore[name]
		}
	}
	if want := uint64(requests * (5*2 + 3*3)); clientRuns != want {
		t.Errorf("client programs ran %d times for %d requests of 5 unary calls and 3 streams, want %d", clientRuns, requests, want)
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if got := scrapeValue(t, text, "golens_orphan_returns_total"); got != 0 {
		t.Errorf("golens_orphan_returns_total = %v, want 0", got)
	}
}

// statusName is grpc-go's codes.Code.String for the codes the test asks
// Status for.
var statusName = map[int64]string{6: "AlreadyExists", 7: "PermissionDenied", 8: "ResourceExhausted", 9: "FailedPrecondition", 10: "Aborted"}
