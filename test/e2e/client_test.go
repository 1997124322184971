package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/golens/golens/test/harness"
)

// clientSetup starts service A (watched) and service B (its downstream).
type clientSetup struct {
	recv  *harness.Receiver
	a, b  *harness.App
	agent *harness.Agent
}

func startClientSetup(t *testing.T, v harness.Variant, agentArgs ...string) *clientSetup {
	return startSetup(t, v, false, agentArgs...)
}

// startSetup starts A and B; golens watches A, and B too when watchB.
func startSetup(t *testing.T, v harness.Variant, watchB bool, agentArgs ...string) *clientSetup {
	t.Helper()
	return startSetupB(t, v, watchB, nil, agentArgs...)
}

// startSetupB is startSetup with B started with bArgs.
func startSetupB(t *testing.T, v harness.Variant, watchB bool, bArgs []string, agentArgs ...string) *clientSetup {
	t.Helper()
	bin := buildApp(t, "httpserver", v)
	s := &clientSetup{}
	var err error
	if s.recv, err = harness.NewReceiver(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.recv.Close)
	if s.b, err = harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=svc-b", "GODEBUG=httpmuxgo121=0"}, bArgs...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.b.Stop)
	if s.a, err = harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=svc-a", "GODEBUG=httpmuxgo121=0"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.a.Stop)
	args := append([]string{"--pid", fmt.Sprint(s.a.PID()), "--otlp-endpoint", s.recv.Addr(), "--otlp-insecure"}, agentArgs...)
	if watchB {
		args = append(args, "--pid", fmt.Sprint(s.b.PID()))
	}
	if s.agent, err = harness.StartAgent(agentBin, nil, args...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.agent.Stop(5 * time.Second) })
	if err := s.agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	return s
}

// get sends GET path to A with an optional traceparent and checks the status.
func (s *clientSetup) get(t *testing.T, path, traceparent string, want int) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.a.Addr+path, nil)
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d", path, resp.StatusCode, want)
	}
}

// byTrace groups spans by trace id.
func byTrace(spans []harness.Span) map[string][]harness.Span {
	m := make(map[string][]harness.Span)
	for _, s := range spans {
		m[s.TraceID] = append(m[s.TraceID], s)
	}
	return m
}

func kindOf(spans []harness.Span, k tracepb.Span_SpanKind) []harness.Span {
	var out []harness.Span
	for _, s := range spans {
		if s.Kind == k {
			out = append(out, s)
		}
	}
	return out
}

func TestHTTPClientSpans(t *testing.T) {
	s := startClientSetup(t, harness.Variant{})
	downstream := "http://" + s.b.Addr
	q := url.QueryEscape

	type call struct {
		name, target string // A calls target
		fanout       int    // 0: /chain, else /fanout with n
		status       int    // A's answer
		clients      int
		clientCode   int    // status each client span records (0: none)
		errType      string // error.type on the client span, "" for none
		spanErr      bool
	}
	calls := []call{
		{"chain", downstream + "/echo/one", 0, 200, 1, 200, "", false},
		{"chain-404", downstream + "/status/404", 0, 404, 1, 404, "404", true},
		{"chain-refused", "http://127.0.0.1:1/x", 0, 502, 1, 0, "*net.OpError", true},
		{"fanout", downstream + "/echo/fan", 3, 200, 3, 200, "", false},
	}
	sent := map[string]string{} // trace id -> call name
	for _, c := range calls {
		tid, pid := randHex(16), randHex(8)
		sent[tid] = c.name
		path := "/chain?to=" + q(c.target)
		if c.fanout > 0 {
			path = fmt.Sprintf("/fanout?n=%d&to=%s", c.fanout, q(c.target))
		}
		s.get(t, path, "00-"+tid+"-"+pid+"-01", c.status)
		want := 1 + c.clients
		got, err := s.recv.WaitFor(len(s.recv.Spans())+want, 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, s.agent.Log())
		}
		spans := byTrace(got)[tid]
		servers := kindOf(spans, tracepb.Span_SPAN_KIND_SERVER)
		clients := kindOf(spans, tracepb.Span_SPAN_KIND_CLIENT)
		if len(servers) != 1 || len(clients) != c.clients {
			t.Errorf("%s: %d server and %d client spans in trace, want 1 and %d", c.name, len(servers), len(clients), c.clients)
			continue
		}
		srv := servers[0]
		if srv.ParentSpanID != pid {
			t.Errorf("%s: server parent %s, want %s", c.name, srv.ParentSpanID, pid)
		}
		seen := map[string]bool{}
		for _, cl := range clients {
			if cl.ParentSpanID != srv.SpanID {
				t.Errorf("%s: client parent %s, want the server span %s", c.name, cl.ParentSpanID, srv.SpanID)
			}
			if seen[cl.SpanID] || cl.SpanID == srv.SpanID {
				t.Errorf("%s: client span id %s reused", c.name, cl.SpanID)
			}
			seen[cl.SpanID] = true
			if cl.Name != "GET" || cl.Attrs["http.request.method"] != "GET" {
				t.Errorf("%s: client name %q method %v", c.name, cl.Name, cl.Attrs["http.request.method"])
			}
			if !cl.Start.After(srv.Start) || !cl.End.Before(srv.End) {
				t.Errorf("%s: client [%s, %s] not inside server [%s, %s]", c.name, cl.Start, cl.End, srv.Start, srv.End)
			}
			if got, _ := cl.Attrs["http.response.status_code"].(int64); int(got) != c.clientCode {
				t.Errorf("%s: client status %v, want %d", c.name, cl.Attrs["http.response.status_code"], c.clientCode)
			}
			if got, _ := cl.Attrs["error.type"].(string); got != c.errType {
				t.Errorf("%s: error.type %q, want %q", c.name, got, c.errType)
			}
			if (cl.StatusCode == tracepb.Status_STATUS_CODE_ERROR) != c.spanErr {
				t.Errorf("%s: client span status %v", c.name, cl.StatusCode)
			}
			if cl.Attrs["url.full"] != c.target {
				t.Errorf("%s: url.full %v, want %s", c.name, cl.Attrs["url.full"], c.target)
			}
			if c.clientCode != 0 {
				host, port := splitAddr(s.b.Addr)
				if cl.Attrs["server.address"] != host || cl.Attrs["server.port"] != port {
					t.Errorf("%s: server %v:%v, want %s:%d", c.name, cl.Attrs["server.address"], cl.Attrs["server.port"], host, port)
				}
			}
			if cl.Resource["service.name"] != "svc-a" {
				t.Errorf("%s: client service %v", c.name, cl.Resource["service.name"])
			}
		}
	}
	text, err := s.agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	host, _ := splitAddr(s.b.Addr)
	for _, want := range []string{
		fmt.Sprintf(`go_app_http_client_requests_total{method="GET",server_address=%q,service_name="svc-a",status_code="200"} 4`, host),
		fmt.Sprintf(`go_app_http_client_requests_total{method="GET",server_address=%q,service_name="svc-a",status_code="404"} 1`, host),
		`go_app_http_client_requests_total{method="GET",server_address="127.0.0.1",service_name="svc-a",status_code="error"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// Calls from goroutines that dropped the request's context are linked only
// with --track-goroutines; the default leaves them as their own traces.
func TestHTTPClientGoroutineAncestry(t *testing.T) {
	for _, track := range []bool{false, true} {
		t.Run(fmt.Sprintf("track=%v", track), func(t *testing.T) {
			var args []string
			if track {
				args = append(args, "--track-goroutines")
			}
			s := startClientSetup(t, harness.Variant{}, args...)
			tid, pid := randHex(16), randHex(8)
			s.get(t, "/fanout?bg=1&n=3&to="+url.QueryEscape("http://"+s.b.Addr+"/echo/bg"), "00-"+tid+"-"+pid+"-01", 200)
			spans, err := s.recv.WaitFor(4, 10*time.Second)
			if err != nil {
				t.Fatalf("%v\n%s", err, s.agent.Log())
			}
			srv := kindOf(byTrace(spans)[tid], tracepb.Span_SPAN_KIND_SERVER)
			if len(srv) != 1 {
				t.Fatalf("server spans in trace: %d", len(srv))
			}
			clients := kindOf(spans, tracepb.Span_SPAN_KIND_CLIENT)
			if len(clients) != 3 {
				t.Fatalf("%d client spans, want 3", len(clients))
			}
			for _, cl := range clients {
				linked := cl.TraceID == tid && cl.ParentSpanID == srv[0].SpanID
				if linked != track {
					t.Errorf("client span trace %s parent %q: linked=%v, want %v", cl.TraceID, cl.ParentSpanID, linked, track)
				}
				if !track && cl.ParentSpanID != "" {
					t.Errorf("unlinked client span has parent %s", cl.ParentSpanID)
				}
			}
		})
	}
}

func splitAddr(hp string) (string, int64) {
	i := strings.LastIndexByte(hp, ':')
	var port int64
	fmt.Sscan(hp[i+1:], &port)
	return hp[:i], port
}

// A calls B, both watched, on this node: B's server span joins A's trace
// under A's client span, linked by their TCP connection, with no context on
// the wire.
func TestSameNodeLinking(t *testing.T) {
	s := startSetup(t, harness.Variant{}, true)
	q := url.QueryEscape
	for _, c := range []struct {
		name, path string
		calls      int
	}{
		{"chain", "/chain?to=" + q("http://"+s.b.Addr+"/echo/linked"), 1},
		// Distinct paths: concurrent identical calls from one process may
		// be paired crosswise (a documented limit of linking by time).
		{"fanout", "/fanout?n=3&distinct=1&to=" + q("http://"+s.b.Addr+"/echo/linked-fan"), 3},
	} {
		for i := 0; i < 5; i++ {
			before := len(s.recv.Spans())
			tid, pid := randHex(16), randHex(8)
			s.get(t, c.path, "00-"+tid+"-"+pid+"-01", 200)
			want := 1 + 2*c.calls
			if _, err := s.recv.WaitFor(before+want, 10*time.Second); err != nil {
				t.Fatalf("%s: %v\n%s", c.name, err, s.agent.Log())
			}
			time.Sleep(200 * time.Millisecond) // nothing extra may follow
			spans := byTrace(s.recv.Spans()[before:])
			if len(spans) != 1 {
				t.Errorf("%s #%d: spans in %d traces, want all in the sent trace", c.name, i, len(spans))
				t.Log(s.agent.Log())
				for _, sp := range s.recv.Spans()[before:] {
					t.Logf("%s %s %v trace=%s span=%s parent=%s [%s +%s] peer=%v:%v", sp.Resource["service.name"], sp.Name, sp.Kind, sp.TraceID[:8], sp.SpanID, sp.ParentSpanID, sp.Start.Format("05.000000"), sp.Duration(), sp.Attrs["client.address"], sp.Attrs["client.port"])
				}
			}
			tr := spans[tid]
			var aSrv []harness.Span
			var aCli, bSrv []harness.Span
			for _, sp := range tr {
				switch {
				case sp.Resource["service.name"] == "svc-a" && sp.Kind == tracepb.Span_SPAN_KIND_SERVER:
					aSrv = append(aSrv, sp)
				case sp.Resource["service.name"] == "svc-a" && sp.Kind == tracepb.Span_SPAN_KIND_CLIENT:
					aCli = append(aCli, sp)
				case sp.Resource["service.name"] == "svc-b" && sp.Kind == tracepb.Span_SPAN_KIND_SERVER:
					bSrv = append(bSrv, sp)
				}
			}
			if len(aSrv) != 1 || len(aCli) != c.calls || len(bSrv) != c.calls {
				t.Fatalf("%s #%d: A server %d, A client %d, B server %d; want 1, %d, %d", c.name, i, len(aSrv), len(aCli), len(bSrv), c.calls, c.calls)
			}
			if aSrv[0].ParentSpanID != pid {
				t.Errorf("%s: A server parent %s, want %s", c.name, aSrv[0].ParentSpanID, pid)
			}
			children := map[string]harness.Span{}
			for _, b := range bSrv {
				children[b.ParentSpanID] = b
			}
			for _, cl := range aCli {
				if cl.ParentSpanID != aSrv[0].SpanID {
					t.Errorf("%s: A client parent %s, want A server %s", c.name, cl.ParentSpanID, aSrv[0].SpanID)
				}
				b, ok := children[cl.SpanID]
				if !ok {
					t.Errorf("%s: no B server span under A client %s", c.name, cl.SpanID)
					continue
				}
				if b.Start.Before(cl.Start) || b.End.After(cl.End) {
					t.Errorf("%s: B [%s, %s] not inside A's call [%s, %s]", c.name, b.Start, b.End, cl.Start, cl.End)
				}
			}
		}
	}
}
