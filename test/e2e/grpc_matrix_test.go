package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/golens/golens/probes/inspect"
	"github.com/golens/golens/test/harness"
)

// grpcMatrixVersions pairs grpc-go releases from v1.60, the oldest the gRPC
// probes support, to the newest, with a Go toolchain each accepts (grpc-go
// v1.68 needs Go 1.22, v1.77 and v1.80 Go 1.24, v1.85 Go 1.26), so that
// every Go release from 1.22 to 1.27 builds one of them. v1.72 and v1.76
// cover grpc-go 1.69 to 1.76, whose handleStream gets a ServerStream that
// embeds *Stream by pointer (the probe's stream_indirect switch); up to
// v1.68 it gets the *Stream itself, from v1.77 on ServerStream embeds the
// Stream by value, at offset 0.
var grpcMatrixVersions = []struct{ grpc, goVersion string }{
	{"v1.60.1", "go1.22.12"},
	{"v1.68.1", "go1.23.12"},
	{"v1.72.2", "go1.23.12"},
	{"v1.76.0", "go1.24.13"},
	{"v1.77.0", "go1.24.13"},
	{"v1.80.0", "go1.25.14"},
	{"v1.85.0", "go1.26.8"},
	{"v1.85.0", "go1.27.3"},
}

// grpcMatrixTarget is one build of test/apps/grpcapp, running.
type grpcMatrixTarget struct {
	grpc     string
	v        harness.Variant
	service  string // its OTEL_SERVICE_NAME
	bin      string
	grpcAddr string
	app      *harness.App
}

func (m *grpcMatrixTarget) String() string { return "grpc-" + m.grpc + "-" + m.v.String() }

// grpcMatrixCalls are the calls every target makes to itself: OK, NOT_FOUND
// (the caller's problem: not an error on the server span), INTERNAL, a
// server stream and the standard health service.
var grpcMatrixCalls = []struct {
	method, name string
	httpStatus   int
	code         int64
	serverErr    bool
}{
	{"Ok", "test.Echo/Ok", 200, 0, false},
	{"Missing", "test.Echo/Missing", 502, 5, false},
	{"Fail", "test.Echo/Fail", 502, 13, true},
	{"Count&n=3", "test.Echo/Count", 200, 0, false},
	{"Health", "grpc.health.v1.Health/Check", 200, 0, false},
}

// TestGRPCMatrix instruments test/apps/grpcapp built against grpc-go
// releases from v1.60 to the newest, by Go 1.22 to 1.26, each plain and
// stripped, with one agent attached to all of them. Every target's HTTP
// /call makes gRPC calls to its own gRPC server: each must give an HTTP
// server span, a gRPC client span and a gRPC server span in one trace, with
// exact parents, codes and statuses. Stripped targets have no DWARF: their
// grpc-go and genproto offsets come from the generated module table.
func TestGRPCMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gRPC target against five grpc-go releases with five Go toolchains")
	}
	var matrix []*grpcMatrixTarget
	for _, gv := range grpcMatrixVersions {
		for _, stripped := range []bool{false, true} {
			m := &grpcMatrixTarget{grpc: gv.grpc, v: harness.Variant{Go: gv.goVersion, Stripped: stripped}}
			m.service = strings.ReplaceAll("grpcm-"+m.String(), ".", "_")
			matrix = append(matrix, m)
		}
	}

	// Plain first, then stripped, per version: the stripped build reuses
	// the plain build's packages.
	start := time.Now()
	for _, m := range matrix {
		s := time.Now()
		bin, err := harness.BuildAppAgainst("grpcapp", m.v, workDir, "google.golang.org/grpc@"+m.grpc)
		if err != nil {
			t.Fatal(err)
		}
		m.bin = bin
		checkGRPCBuild(t, m)
		t.Logf("built %s in %s", m, time.Since(s).Round(time.Millisecond))
	}
	t.Logf("built %d targets in %s", len(matrix), time.Since(start).Round(time.Millisecond))

	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	args := []string{"--otlp-endpoint", recv.Addr(), "--otlp-insecure"}
	for _, m := range matrix {
		if m.grpcAddr, err = harness.FreeAddr(); err != nil {
			t.Fatal(err)
		}
		m.app, err = harness.StartApp(m.bin, []string{"OTEL_SERVICE_NAME=" + m.service, "GODEBUG=httpmuxgo121=0"}, "-grpc-addr", m.grpcAddr)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		defer m.app.Stop()
		args = append(args, "--pid", fmt.Sprint(m.app.PID()))
	}
	start = time.Now()
	agent, err := harness.StartAgent(agentBin, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("agent attached to %d targets in %s", len(matrix), time.Since(start).Round(time.Millisecond))
	if got := targets(t, agent); got != len(matrix) {
		t.Fatalf("golens_targets %d, want %d\n%s", got, len(matrix), agent.Log())
	}
	// A stripped target whose offsets were unknown would have its gRPC
	// probe refused or its hooks dropped, and say so.
	for _, bad := range []string{"cannot instrument", "probe refused", "offset unknown"} {
		if strings.Contains(agent.Log(), bad) {
			t.Errorf("agent log says %q:\n%s", bad, agent.Log())
		}
	}

	start = time.Now()
	var mu sync.Mutex
	traceIDs := make(map[string]string) // trace id -> target/call
	t.Run("targets", func(t *testing.T) {
		for _, m := range matrix {
			t.Run(m.String(), func(t *testing.T) {
				t.Parallel()
				ids := make([]string, len(grpcMatrixCalls))
				parents := make([]string, len(grpcMatrixCalls))
				for i, c := range grpcMatrixCalls {
					ids[i], parents[i] = randHex(16), randHex(8)
					mu.Lock()
					traceIDs[ids[i]] = m.String() + "/" + c.method
					mu.Unlock()
					req, _ := http.NewRequest("GET", "http://"+m.app.Addr+"/call?target="+url.QueryEscape(m.grpcAddr)+"&method="+c.method, nil)
					req.Header.Set("traceparent", "00-"+ids[i]+"-"+parents[i]+"-01")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatalf("%s: %v", c.method, err)
					}
					resp.Body.Close()
					if resp.StatusCode != c.httpStatus {
						t.Errorf("%s: /call answered %d, want %d", c.method, resp.StatusCode, c.httpStatus)
					}
				}
				// On a timeout, go on: the checks below say which are missing.
				spans, err := waitSpans(recv, m.service, 3*len(grpcMatrixCalls), 20*time.Second)
				if err != nil {
					t.Errorf("%v\nagent log:\n%s", err, agent.Log())
				}
				traces := byTrace(spans)
				for i, c := range grpcMatrixCalls {
					checkGRPCChain(t, m, traces[ids[i]], parents[i], c.method, c.name, c.code, c.serverErr)
				}
			})
		}
	})
	t.Logf("traffic and checks took %s", time.Since(start).Round(time.Millisecond))

	// Nothing more than the three spans of each call may arrive.
	time.Sleep(1500 * time.Millisecond)
	spans := recv.Spans()
	if want := 3 * len(grpcMatrixCalls) * len(matrix); len(spans) != want {
		t.Errorf("got %d spans for %d calls, want %d", len(spans), len(grpcMatrixCalls)*len(matrix), want)
	}
	for _, s := range spans {
		if _, ok := traceIDs[s.TraceID]; !ok {
			t.Errorf("span %s of %v in trace %s that no call started", s.Name, s.Resource["service.name"], s.TraceID)
		}
	}

	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for series, want := range map[string]float64{
		`golens_targets`:                       float64(len(matrix)),
		`golens_events_lost_total`:             0,
		`golens_events_decode_errors_total`:    0,
		`golens_probes_attached{probe="grpc"}`: float64(len(matrix)),
	} {
		if got := scrapeValue(t, text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, m := range matrix {
		svc := fmt.Sprintf("service_name=%q", m.service)
		for series, want := range map[string]float64{
			`go_app_grpc_server_handled_total{grpc_code="INTERNAL",grpc_method="Fail",grpc_service="test.Echo",` + svc + `}`:        1,
			`go_app_grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="Missing",grpc_service="test.Echo",` + svc + `}`:    1,
			`go_app_grpc_client_handled_total{grpc_code="NOT_FOUND",grpc_method="Missing",grpc_service="test.Echo",` + svc + `}`:    1,
			`go_app_grpc_client_handled_total{grpc_code="OK",grpc_method="Check",grpc_service="grpc.health.v1.Health",` + svc + `}`: 1,
			`go_app_grpc_server_handling_seconds_count{grpc_code="OK",grpc_method="Count",grpc_service="test.Echo",` + svc + `}`:    1,
		} {
			if got := scrapeValue(t, text, series); got != want {
				t.Errorf("%s = %v, want %v", series, got, want)
			}
		}
	}
}

// checkGRPCBuild checks that a target is what its name says: built by its
// toolchain against its grpc-go release, with DWARF unless stripped.
func checkGRPCBuild(t *testing.T, m *grpcMatrixTarget) {
	t.Helper()
	b, err := inspect.Open(m.bin)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.GoVersion != m.v.Go || b.Modules["google.golang.org/grpc"] != m.grpc || b.HasDWARF() == m.v.Stripped {
		t.Fatalf("%s: built by %s with grpc %s, DWARF %v", m, b.GoVersion, b.Modules["google.golang.org/grpc"], b.HasDWARF())
	}
}

// checkGRPCChain checks the spans of one call of target m to itself: the
// HTTP server span continues the sent trace, the gRPC client span is its
// child and the gRPC server span the client span's child, inside it in
// time; names, codes, statuses and addresses as the gRPC conventions say.
func checkGRPCChain(t *testing.T, m *grpcMatrixTarget, spans []harness.Span, parent, method, name string, code int64, serverErr bool) {
	t.Helper()
	var httpSrv, cli, srv []harness.Span
	for _, s := range spans {
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
		t.Errorf("%s: %d HTTP server, %d gRPC client, %d gRPC server spans in its trace, want 1 each", method, len(httpSrv), len(cli), len(srv))
		return
	}
	h, c, s := httpSrv[0], cli[0], srv[0]
	if h.ParentSpanID != parent || c.ParentSpanID != h.SpanID || s.ParentSpanID != c.SpanID {
		t.Errorf("%s: parents http=%s (want %s) client=%s (want %s) server=%s (want %s)", method,
			h.ParentSpanID, parent, c.ParentSpanID, h.SpanID, s.ParentSpanID, c.SpanID)
	}
	if h.Attrs["url.path"] != "/call" || h.Kind != tracepb.Span_SPAN_KIND_SERVER || s.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("%s: HTTP span %s kind %v path %v, gRPC server span kind %v", method, h.Name, h.Kind, h.Attrs["url.path"], s.Kind)
	}
	if s.Start.Before(c.Start) || s.End.After(c.End) {
		t.Errorf("%s: server span [%s, %s] not inside the client call [%s, %s]", method, s.Start, s.End, c.Start, c.End)
	}
	svc, rpcMethod := name[:len(name)-len(lastPart(name))-1], lastPart(name)
	for _, sp := range []harness.Span{c, s} {
		if sp.Name != name || sp.Attrs["rpc.system"] != "grpc" || sp.Attrs["rpc.service"] != svc || sp.Attrs["rpc.method"] != rpcMethod || sp.Attrs["rpc.grpc.status_code"] != code {
			t.Errorf("%s: %v span %q rpc.system=%v rpc.service=%v rpc.method=%v code=%v, want %q code %d", method, sp.Kind, sp.Name,
				sp.Attrs["rpc.system"], sp.Attrs["rpc.service"], sp.Attrs["rpc.method"], sp.Attrs["rpc.grpc.status_code"], name, code)
		}
	}
	if got := c.StatusCode == tracepb.Status_STATUS_CODE_ERROR; got != (code != 0) {
		t.Errorf("%s: client span error=%v, want %v (any non-OK code)", method, got, code != 0)
	}
	if got := s.StatusCode == tracepb.Status_STATUS_CODE_ERROR; got != serverErr {
		t.Errorf("%s: server span error=%v, want %v", method, got, serverErr)
	}
	host, port := splitAddr(m.grpcAddr)
	if c.Attrs["server.address"] != host || c.Attrs["server.port"] != port || s.Attrs["client.address"] != "127.0.0.1" {
		t.Errorf("%s: client server.address %v:%v (want %s), server client.address %v", method,
			c.Attrs["server.address"], c.Attrs["server.port"], m.grpcAddr, s.Attrs["client.address"])
	}
	for _, sp := range []harness.Span{h, c, s} {
		if sp.Resource["service.name"] != m.service || sp.Resource["process.pid"] != int64(m.app.PID()) || sp.Resource["process.runtime.version"] != m.v.Go {
			t.Errorf("%s: span %q from %v pid %v %v, want %s pid %d %s", method, sp.Name, sp.Resource["service.name"],
				sp.Resource["process.pid"], sp.Resource["process.runtime.version"], m.service, m.app.PID(), m.v.Go)
		}
	}
}
