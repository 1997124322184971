package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/golens/golens/test/harness"
)

// A target whose OTEL_SERVICE_NAME is not valid UTF-8 serving a path that
// is not either: its metrics have the sanitized labels, its spans arrive,
// and nothing is counted as failed.
func TestInvalidUTF8MetricLabels(t *testing.T) {
	app, agent, recv := startWatched(t, []string{"OTEL_SERVICE_NAME=caf\xe9-svc"})
	getStatus(t, app, "/%ff%fe", 404)
	getStatus(t, app, "/hello", 200)
	getStatus(t, app, "/hello", 200)
	spans, err := recv.WaitFor(3, 10*time.Second)
	if err != nil {
		t.Fatalf("%v\nagent log:\n%s", err, agent.Log())
	}
	paths := map[string]int{}
	for _, s := range spans {
		if svc := s.Resource["service.name"]; svc != "caf\uFFFD-svc" {
			t.Errorf("span %s: service.name %q", s.Attrs["url.path"], svc)
		}
		paths[s.Attrs["url.path"].(string)]++
	}
	if paths["/\uFFFD\uFFFD"] != 1 || paths["/hello"] != 2 {
		t.Errorf("span paths %v, want one /\uFFFD\uFFFD and two /hello", paths)
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for series, want := range map[string]float64{
		`go_app_http_server_requests_total{method="GET",route="/` + "\uFFFD\uFFFD" + `",service_name="caf` + "\uFFFD" + `-svc",status_code="404"}`: 1,
		`go_app_http_server_requests_total{method="GET",route="/hello",service_name="caf` + "\uFFFD" + `-svc",status_code="200"}`:                  2,
		`golens_metrics_record_failed_total{reason="labels"}`:                                                                                      0,
		`golens_metrics_record_failed_total{reason="panic"}`:                                                                                       0,
		`golens_events_decode_errors_total`:                                                                                                        0,
		`golens_spans_failed_total`:                                                                                                                0,
	} {
		if got := scrapeValue(t, text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if strings.Contains(agent.Log(), "panic") {
		t.Errorf("agent logged a panic:\n%s", agent.Log())
	}
}

// Duration buckets that would panic at the first observation are refused
// at start-up as a usage error.
func TestDurationBucketsRejected(t *testing.T) {
	app, err := harness.StartApp(buildApp(t, "httpserver", harness.Variant{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	for _, b := range []string{"0.1,0.1", "0.5,0.1", "-1,1", "NaN"} {
		t.Run(b, func(t *testing.T) {
			agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(app.PID()), "--duration-buckets="+b)
			if err != nil {
				t.Fatal(err)
			}
			code, err := agent.Wait(5 * time.Second)
			if err != nil {
				t.Fatalf("%v\n%s", err, agent.Log())
			}
			if code != 64 || !strings.Contains(agent.Log(), "duration bucket") {
				t.Errorf("exit %d, want 64 (usage) with the buckets named; log:\n%s", code, agent.Log())
			}
		})
	}
}

// A gRPC call whose method name is not valid UTF-8 reaches the server
// probe like any unknown method: its span and its metrics carry the
// sanitized name.
func TestInvalidUTF8GRPCMethod(t *testing.T) {
	bin := buildApp(t, "grpcapp", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	addr, _ := harness.FreeAddr()
	b, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=utf8-grpc"}, "-grpc-addr", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(b.PID()), "--otlp-endpoint", recv.Addr(), "--otlp-insecure")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, m := range []string{"/test.Echo/Ok", "/test.Echo/N\xffm\xc3", "/test.Echo/Ok"} {
		err := conn.Invoke(ctx, m, new(emptypb.Empty), new(emptypb.Empty))
		if code := status.Code(err); (m == "/test.Echo/Ok") != (code == codes.OK) {
			t.Fatalf("%q: %v", m, err)
		}
	}
	spans, err := recv.WaitFor(3, 10*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, agent.Log())
	}
	names := map[string]int{}
	for _, s := range spans {
		names[s.Name]++
	}
	if names["test.Echo/N\uFFFDm\uFFFD"] != 1 || names["test.Echo/Ok"] != 2 {
		t.Errorf("span names %v", names)
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for series, want := range map[string]float64{
		`go_app_grpc_server_handled_total{grpc_code="UNIMPLEMENTED",grpc_method="N` + "\uFFFD" + `m` + "\uFFFD" + `",grpc_service="test.Echo",service_name="utf8-grpc"}`: 1,
		`go_app_grpc_server_handled_total{grpc_code="OK",grpc_method="Ok",grpc_service="test.Echo",service_name="utf8-grpc"}`:                                            2,
		`golens_metrics_record_failed_total{reason="panic"}`: 0,
	} {
		if got := scrapeValue(t, text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}
