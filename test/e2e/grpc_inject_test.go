package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/golens/golens/test/harness"
)

// gRPC across "nodes": A's agent (--inject-context) watches only A, B's
// agent only B, so nothing links B's spans to A's but the traceparent
// golens writes into each HEADERS frame on the wire. Sixteen concurrent
// identical unary calls, sixteen concurrent server-streaming calls (each
// its own HTTP request with its own incoming traceparent), then sixteen
// concurrent calls of one method over four connections in one request
// (each told apart by the status code it asks for): every B server span
// has exactly its own client span as parent, in the right trace; the
// injected counter equals the calls, and nothing is skipped but a call
// whose application set its own traceparent, which B continues.
func TestGRPCInjectAcrossAgents(t *testing.T) {
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
	start := func(args ...string) *harness.Agent {
		ag, err := harness.StartAgent(agentBin, nil, append(args, "--otlp-endpoint", recv.Addr(), "--otlp-insecure")...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ag.Stop(5 * time.Second) })
		if err := ag.WaitReady(20 * time.Second); err != nil {
			t.Fatalf("%v\n%s", err, ag.Log())
		}
		return ag
	}
	agentA := start("--pid", fmt.Sprint(a.PID()), "--inject-context")
	start("--pid", fmt.Sprint(b.PID()))

	get := func(path, traceparent string) string {
		req, _ := http.NewRequest("GET", "http://"+a.Addr+path, nil)
		if traceparent != "" {
			req.Header.Set("traceparent", traceparent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	target := url.QueryEscape(bGRPC)
	// The four connections, opened after the agent attached.
	if got := get("/fanout?target="+target+"&calls=Ok@0,Ok@1,Ok@2,Ok@3", ""); got != "OK,OK,OK,OK" {
		t.Fatalf("warm-up: %q", got)
	}
	waitMetric(t, agentA, `golens_inject_total{reason="http2",result="injected"}`, 4, 10*time.Second)
	if _, err := recv.WaitFor(1+4+4, 10*time.Second); err != nil {
		t.Fatalf("warm-up spans: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	before := len(recv.Spans())
	stats, err := harness.RunStats()
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	runsBefore := runCounts(t, agentA)

	// Sixteen requests at once, each with its own trace, per method.
	traces := map[string]string{} // trace id -> method
	for _, m := range []string{"Ok", "Count&n=3"} {
		var wg sync.WaitGroup
		for range 16 {
			tid := randHex(16)
			traces[tid] = m
			wg.Add(1)
			go func() {
				defer wg.Done()
				if got := get("/call?target="+target+"&method="+m, "00-"+tid+"-"+randHex(8)+"-01"); got != "OK" {
					t.Errorf("%s: A answered %q", m, got)
				}
			}()
		}
		wg.Wait()
	}
	// Sixteen calls of one method in one request, over four connections.
	fanTrace := randHex(16)
	var calls, want []string
	for code := 1; code <= 16; code++ {
		calls = append(calls, fmt.Sprintf("Status:%d@%d", code, code%4))
		want = append(want, grpcCodeName[code])
	}
	if got := get("/fanout?target="+target+"&calls="+strings.Join(calls, ","), "00-"+fanTrace+"-"+randHex(8)+"-01"); got != strings.Join(want, ",") {
		t.Fatalf("fan-out: A answered %q, want %q", got, strings.Join(want, ","))
	}

	// A call whose application sends its own traceparent metadata: B
	// continues that one, and golens counts the call as not announced.
	appTrace, appSpan := randHex(16), randHex(8)
	if got := get("/fanout?target="+target+"&calls="+url.QueryEscape("Ok@2+tp")+"&tp=00-"+appTrace+"-"+appSpan+"-01", ""); got != "OK" {
		t.Fatalf("call with its own traceparent: A answered %q", got)
	}

	const total = 2*16*3 + 1 + 16*2 + 3 // per call request: HTTP, client, server; the fan-out; the app's own
	spans, err := recv.WaitFor(before+total, 20*time.Second)
	if err == nil {
		time.Sleep(time.Second) // and no more than that
		spans = recv.Spans()
	}
	spans = spans[before:]
	if len(spans) != total {
		t.Errorf("%d spans, want %d", len(spans), total)
	}
	got := byTrace(spans)
	isGRPCServer := func(s harness.Span) bool {
		return s.Kind == tracepb.Span_SPAN_KIND_SERVER && s.Attrs["rpc.system"] == "grpc"
	}
	for tid, m := range traces {
		var httpSrv, cli, srv []harness.Span
		for _, s := range got[tid] {
			switch {
			case s.Kind == tracepb.Span_SPAN_KIND_CLIENT:
				cli = append(cli, s)
			case isGRPCServer(s):
				srv = append(srv, s)
			default:
				httpSrv = append(httpSrv, s)
			}
		}
		if len(httpSrv) != 1 || len(cli) != 1 || len(srv) != 1 {
			t.Errorf("trace %s (%s): %d HTTP server, %d client and %d gRPC server spans, want 1 each", tid, m, len(httpSrv), len(cli), len(srv))
			continue
		}
		if cli[0].ParentSpanID != httpSrv[0].SpanID || srv[0].ParentSpanID != cli[0].SpanID {
			t.Errorf("trace %s (%s): client's parent %s (want %s), server's %s (want the client span %s)",
				tid, m, cli[0].ParentSpanID, httpSrv[0].SpanID, srv[0].ParentSpanID, cli[0].SpanID)
		}
		if srv[0].Resource["service.name"] != "grpc-b" {
			t.Errorf("trace %s: server span of %v", tid, srv[0].Resource["service.name"])
		}
	}
	cliByCode, srvByCode := map[int64][]harness.Span{}, map[int64][]harness.Span{}
	for _, s := range got[fanTrace] {
		code, _ := s.Attrs["rpc.grpc.status_code"].(int64)
		switch {
		case s.Kind == tracepb.Span_SPAN_KIND_CLIENT:
			cliByCode[code] = append(cliByCode[code], s)
		case isGRPCServer(s):
			srvByCode[code] = append(srvByCode[code], s)
		}
	}
	for code := int64(1); code <= 16; code++ {
		c, s := cliByCode[code], srvByCode[code]
		if len(c) != 1 || len(s) != 1 {
			t.Errorf("fan-out, code %d: %d client and %d server spans, want 1 each", code, len(c), len(s))
			continue
		}
		if s[0].ParentSpanID != c[0].SpanID {
			t.Errorf("fan-out, code %d: server's parent %s, want its client span %s", code, s[0].ParentSpanID, c[0].SpanID)
		}
	}

	// The announcement is one hit per call; the other client hits are
	// those of every call (two, a stream's context watcher a third).
	runs := runCounts(t, agentA)
	hits := map[string]uint64{}
	for name, n := range runs {
		if strings.HasPrefix(name, "uprobe_grpc_") {
			hits[name] = n - runsBefore[name]
		}
	}
	if n := hits["uprobe_grpc_announce"] + hits["uprobe_grpc_announce_orig"]; n != 49 {
		t.Errorf("the announcing program ran %d times for 49 calls, want 49 (%v)", n, hits)
	}
	if n := hits["uprobe_grpc_client_entry"] + hits["uprobe_grpc_client_finish"]; n != 49*2+16 {
		t.Errorf("the client programs ran %d times for 33 unary calls and 16 streams, want %d (%v)", n, 49*2+16, hits)
	}

	var own []harness.Span
	for _, s := range got[appTrace] {
		if isGRPCServer(s) {
			own = append(own, s)
		}
	}
	if len(own) != 1 || own[0].ParentSpanID != appSpan {
		t.Errorf("the call with its own traceparent: %d server spans in its trace %s, want 1 under %s: %+v", len(own), appTrace, appSpan, own)
	}

	text, err := agentA.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if got := sumMetric(text, `golens_inject_total{reason="http2",result="injected"}`); got != 4+16*3 {
		t.Errorf("injected into %v HTTP/2 requests, want %d", got, 4+16*3)
	}
	if got := sumMetric(text, `golens_inject_total{reason="grpc_app_traceparent",result="skipped"}`); got != 1 {
		t.Errorf("%v calls not announced for their own traceparent, want 1", got)
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "golens_inject_total{") && strings.Contains(line, `result="skipped"`) &&
			!strings.Contains(line, "grpc_app_traceparent") && !strings.HasSuffix(line, " 0") {
			t.Errorf("skipped: %s", line)
		}
	}
}

// grpcCodeName is grpc-go's codes.Code.String.
var grpcCodeName = []string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
	"Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}
