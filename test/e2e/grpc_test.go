package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/golens/golens/test/harness"
)

// An HTTP handler in A calls B over gRPC, both watched: HTTP server span →
// gRPC client span → gRPC server span, one trace, exact parents; status
// codes and span statuses per the gRPC conventions; a server stream; and a
// traceparent arriving in gRPC metadata continues its trace.
func TestGRPC(t *testing.T) {
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
	a, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=grpc-a", "GODEBUG=httpmuxgo121=0"})
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

	for _, c := range []struct {
		method, name string
		httpStatus   int
		code         int64
		serverErr    bool
	}{
		{"Ok", "test.Echo/Ok", 200, 0, false},
		{"Missing", "test.Echo/Missing", 502, 5, false}, // NOT_FOUND: the caller's problem
		{"Fail", "test.Echo/Fail", 502, 13, true},       // INTERNAL
		{"Count&n=3", "test.Echo/Count", 200, 0, false}, // server streaming
		{"Health", "grpc.health.v1.Health/Check", 200, 0, false},
	} {
		before := len(recv.Spans())
		tid, pid := randHex(16), randHex(8)
		req, _ := http.NewRequest("GET", "http://"+a.Addr+"/call?target="+url.QueryEscape(bGRPC)+"&method="+c.method, nil)
		req.Header.Set("traceparent", "00-"+tid+"-"+pid+"-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.httpStatus {
			t.Errorf("%s: A answered %d, want %d", c.method, resp.StatusCode, c.httpStatus)
		}
		spans, err := recv.WaitFor(before+3, 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.method, err, agent.Log())
		}
		var httpSrv, cli, srv []harness.Span
		for _, s := range byTrace(spans[before:])[tid] {
			switch {
			case s.Kind == tracepb.Span_SPAN_KIND_CLIENT:
				cli = append(cli, s)
			case s.Attrs["rpc.system"] == "grpc":
				srv = append(srv, s)
			default:
				httpSrv = append(httpSrv, s)
			}
		}
		if len(httpSrv) != 1 || len(cli) != 1 || len(srv) != 1 {
			t.Fatalf("%s: %d HTTP server, %d gRPC client, %d gRPC server spans in trace, want 1 each", c.method, len(httpSrv), len(cli), len(srv))
		}
		if httpSrv[0].ParentSpanID != pid || cli[0].ParentSpanID != httpSrv[0].SpanID || srv[0].ParentSpanID != cli[0].SpanID {
			t.Errorf("%s: parents http=%s (want %s) client=%s (want %s) server=%s (want %s)", c.method,
				httpSrv[0].ParentSpanID, pid, cli[0].ParentSpanID, httpSrv[0].SpanID, srv[0].ParentSpanID, cli[0].SpanID)
		}
		if srv[0].Start.Before(cli[0].Start) || srv[0].End.After(cli[0].End) {
			t.Errorf("%s: server span not inside the client call", c.method)
		}
		svc, method := c.name[:len(c.name)-len(lastPart(c.name))-1], lastPart(c.name)
		for _, s := range []harness.Span{cli[0], srv[0]} {
			if s.Name != c.name || s.Attrs["rpc.service"] != svc || s.Attrs["rpc.method"] != method || s.Attrs["rpc.grpc.status_code"] != c.code {
				t.Errorf("%s: span %q rpc.service=%v rpc.method=%v code=%v", c.method, s.Name, s.Attrs["rpc.service"], s.Attrs["rpc.method"], s.Attrs["rpc.grpc.status_code"])
			}
		}
		if got := cli[0].StatusCode == tracepb.Status_STATUS_CODE_ERROR; got != (c.code != 0) {
			t.Errorf("%s: client span error=%v, want %v (any non-OK code)", c.method, got, c.code != 0)
		}
		if got := srv[0].StatusCode == tracepb.Status_STATUS_CODE_ERROR; got != c.serverErr {
			t.Errorf("%s: server span error=%v, want %v", c.method, got, c.serverErr)
		}
		if cli[0].Resource["service.name"] != "grpc-a" || srv[0].Resource["service.name"] != "grpc-b" {
			t.Errorf("%s: services %v %v", c.method, cli[0].Resource["service.name"], srv[0].Resource["service.name"])
		}
		host, port := splitAddr(bGRPC)
		if cli[0].Attrs["server.address"] != host || cli[0].Attrs["server.port"] != port || srv[0].Attrs["client.address"] != "127.0.0.1" {
			t.Errorf("%s: client server.address %v:%v, server client.address %v", c.method, cli[0].Attrs["server.address"], cli[0].Attrs["server.port"], srv[0].Attrs["client.address"])
		}
	}

	// A traceparent in the incoming metadata continues its trace.
	conn, err := grpc.NewClient(bGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tid, pid := randHex(16), randHex(8)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+tid+"-"+pid+"-01")
	before := len(recv.Spans())
	if err := conn.Invoke(ctx, "/test.Echo/Ok", new(emptypb.Empty), new(emptypb.Empty)); err != nil {
		t.Fatal(err)
	}
	spans, err := recv.WaitFor(before+1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := byTrace(spans[before:])[tid]
	if len(got) != 1 || got[0].ParentSpanID != pid || got[0].Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("metadata traceparent: spans in its trace %+v, want B's server span with parent %s", got, pid)
	}

	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for series, want := range map[string]float64{
		`go_app_grpc_server_handled_total{grpc_code="INTERNAL",grpc_method="Fail",grpc_service="test.Echo",service_name="grpc-b"}`:     1,
		`go_app_grpc_server_handled_total{grpc_code="OK",grpc_method="Ok",grpc_service="test.Echo",service_name="grpc-b"}`:             2,
		`go_app_grpc_client_handled_total{grpc_code="NOT_FOUND",grpc_method="Missing",grpc_service="test.Echo",service_name="grpc-a"}`: 1,
		`go_app_grpc_server_handling_seconds_count{grpc_code="OK",grpc_method="Count",grpc_service="test.Echo",service_name="grpc-b"}`: 1,
	} {
		if got := scrapeValue(t, text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	promtool(t, text)
}

func lastPart(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return s[i+1:]
		}
	}
	return s
}

// Client streaming and bidirectional streams get one client and one server
// span each, linked; and every status code is what the README says: the
// client span is an error for any non-OK code, the server span only for
// UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and
// DATA_LOSS; the code itself is rpc.grpc.status_code on both.
func TestGRPCStreamsAndCodes(t *testing.T) {
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
	serverErr := map[int64]bool{2: true, 4: true, 12: true, 13: true, 14: true, 15: true}
	type rpcCase struct {
		query, name string
		code        int64
	}
	cases := []rpcCase{
		{"method=Sum&n=4", "test.Echo/Sum", 0},
		{"method=Chat&n=3", "test.Echo/Chat", 0},
	}
	for code := int64(0); code <= 16; code++ {
		cases = append(cases, rpcCase{fmt.Sprintf("method=Status&n=%d", code), "test.Echo/Status", code})
	}
	for _, c := range cases {
		before := len(recv.Spans())
		tid := randHex(16)
		req, _ := http.NewRequest("GET", "http://"+a.Addr+"/call?target="+url.QueryEscape(bGRPC)+"&"+c.query, nil)
		req.Header.Set("traceparent", "00-"+tid+"-"+randHex(8)+"-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: 200, false: 502}[c.code == 0]; resp.StatusCode != want {
			t.Fatalf("%s: A answered %d, want %d", c.query, resp.StatusCode, want)
		}
		spans, err := recv.WaitFor(before+3, 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.query, err, agent.Log())
		}
		got := byTrace(spans[before:])[tid]
		var httpSrv, cli, srv []harness.Span
		for _, s := range got {
			switch {
			case s.Kind == tracepb.Span_SPAN_KIND_CLIENT:
				cli = append(cli, s)
			case s.Attrs["rpc.system"] == "grpc":
				srv = append(srv, s)
			default:
				httpSrv = append(httpSrv, s)
			}
		}
		if len(httpSrv) != 1 || len(cli) != 1 || len(srv) != 1 {
			t.Errorf("%s: %d HTTP server, %d client, %d gRPC server spans in the trace, want one each", c.query, len(httpSrv), len(cli), len(srv))
			continue
		}
		if cli[0].ParentSpanID != httpSrv[0].SpanID || srv[0].ParentSpanID != cli[0].SpanID {
			t.Errorf("%s: client's parent %s (want %s), server's %s (want %s)", c.query, cli[0].ParentSpanID, httpSrv[0].SpanID, srv[0].ParentSpanID, cli[0].SpanID)
		}
		for _, s := range []harness.Span{cli[0], srv[0]} {
			if s.Name != c.name || s.Attrs["rpc.grpc.status_code"] != c.code {
				t.Errorf("%s: span %q code %v, want %q %d", c.query, s.Name, s.Attrs["rpc.grpc.status_code"], c.name, c.code)
			}
		}
		if got := cli[0].StatusCode == tracepb.Status_STATUS_CODE_ERROR; got != (c.code != 0) {
			t.Errorf("%s: client span error=%v", c.query, got)
		}
		if got := srv[0].StatusCode == tracepb.Status_STATUS_CODE_ERROR; got != serverErr[c.code] {
			t.Errorf("%s: server span error=%v, want %v", c.query, got, serverErr[c.code])
		}
	}
}
