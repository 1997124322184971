package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/golens/golens/test/harness"
)

// A handler that panics, recovered by net/http, ends its request there: one
// server span with status Error and error.type "panic", the status the
// client saw (none unless the header block had gone out), counted as an
// error in the metrics; its context is forgotten, so calls of later
// requests are never linked into it. A panic the handler's own middleware
// recovers is one normal span.
func TestHTTPServerPanic(t *testing.T) {
	for _, v := range []harness.Variant{{Go: "go1.21.13"}, {}, {Go: "go1.27.3", Stripped: true}} {
		t.Run(v.String(), func(t *testing.T) { testHTTPServerPanic(t, v) })
	}
}

func testHTTPServerPanic(t *testing.T, v harness.Variant) {
	s := startClientSetup(t, v)
	downstream := "http://" + s.b.Addr
	q := url.QueryEscape
	// A fresh connection per request: the Transport would silently resend
	// an idempotent request whose kept-alive connection closed unanswered.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

	// The cost: two probe hits a request, and one more only when a
	// recover() succeeds in the target.
	for _, c := range []struct {
		path string
		hits int
	}{{"/hello", 2}, {"/recovered", 3}} {
		before := probeHits(t, s.agent)
		for i := 0; i < 10; i++ {
			if resp, err := client.Get("http://" + s.a.Addr + c.path); err == nil {
				resp.Body.Close()
			}
		}
		if got := probeHits(t, s.agent) - before; got != 10*c.hits {
			t.Errorf("10 requests for %s cost %d probe hits, want %d", c.path, got, 10*c.hits)
		}
	}
	const base = 20 // spans so far
	if _, err := s.recv.WaitFor(base, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	type call struct {
		name    string
		path    string
		clients int  // client spans A makes
		panics  bool // net/http ends the request
		status  int  // http.response.status_code on the server span, 0 none
		answer  int  // what the test's client gets, 0 no response
	}
	calls := []call{
		{"chain", "/chain?to=" + q(downstream+"/echo/one"), 1, false, 200, 200},
		{"panic-after-call", "/panic?to=" + q(downstream+"/echo/two"), 1, true, 0, 0},
		{"panic-after-header", "/panic?sent=202", 0, true, 202, 202},
		{"recovered", "/recovered", 0, false, 500, 500},
		// Garbage collections free the panicked requests' contexts, so
		// later contexts may take their addresses.
		{"gc", "/gc?n=2", 0, false, 200, 200},
	}
	const rounds = 4
	type sent struct {
		call
		trace string
	}
	var all []sent
	want := 0
	for r := 0; r < rounds; r++ {
		for _, c := range calls {
			tid := randHex(16)
			req, _ := http.NewRequest("GET", "http://"+s.a.Addr+c.path, nil)
			req.Header.Set("traceparent", "00-"+tid+"-"+randHex(8)+"-01")
			got := 0
			if resp, err := client.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				got = resp.StatusCode
			}
			if got != c.answer {
				t.Fatalf("%s: answer %d, want %d", c.name, got, c.answer)
			}
			all = append(all, sent{c, tid})
			want += 1 + c.clients
		}
	}
	if _, err := s.recv.WaitFor(base+want, 15*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, s.agent.Log())
	}
	time.Sleep(1500 * time.Millisecond) // nothing more may come
	spans := s.recv.Spans()[base:]
	if len(spans) != want {
		t.Errorf("%d spans, want %d", len(spans), want)
	}

	traces := byTrace(spans)
	panicked := map[string]bool{} // span ids of panicked requests
	for _, c := range all {
		servers := kindOf(traces[c.trace], tracepb.Span_SPAN_KIND_SERVER)
		clients := kindOf(traces[c.trace], tracepb.Span_SPAN_KIND_CLIENT)
		if len(servers) != 1 || len(clients) != c.clients {
			t.Errorf("%s: %d server and %d client spans, want 1 and %d", c.name, len(servers), len(clients), c.clients)
			continue
		}
		srv := servers[0]
		status, _ := srv.Attrs["http.response.status_code"].(int64)
		if int(status) != c.status {
			t.Errorf("%s: status_code %v, want %d", c.name, srv.Attrs["http.response.status_code"], c.status)
		}
		errType, _ := srv.Attrs["error.type"].(string)
		wantErr := tracepb.Status_STATUS_CODE_UNSET
		if c.panics || c.status >= 500 {
			wantErr = tracepb.Status_STATUS_CODE_ERROR
		}
		if srv.StatusCode != wantErr {
			t.Errorf("%s: span status %v, want %v", c.name, srv.StatusCode, wantErr)
		}
		if want := wantErrorType(c.panics, c.status); errType != want {
			t.Errorf("%s: error.type %q, want %q", c.name, errType, want)
		}
		if c.panics {
			panicked[srv.SpanID] = true
		}
		for _, cl := range clients {
			if cl.ParentSpanID != srv.SpanID {
				t.Errorf("%s: client span parent %s, want %s", c.name, cl.ParentSpanID, srv.SpanID)
			}
		}
	}
	// After garbage collections freed the panicked requests' contexts,
	// calls with fresh contexts of their own (which may take those
	// addresses) belong to no request: roots, every one.
	const later = 5
	for i := 0; i < later; i++ {
		paths := []string{"/gc?n=1"}
		for j := 0; j < 10; j++ {
			paths = append(paths, "/chain?bg=1&to="+q(downstream+"/echo/later"))
		}
		for _, p := range paths {
			if resp, err := client.Get("http://" + s.a.Addr + p); err == nil {
				resp.Body.Close()
			}
		}
	}
	spans, err := s.recv.WaitFor(base+want+later*21, 15*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.agent.Log())
	}
	linked := 0
	for _, sp := range spans[base+want:] {
		if sp.Kind == tracepb.Span_SPAN_KIND_CLIENT && sp.ParentSpanID != "" {
			linked++
			if panicked[sp.ParentSpanID] {
				t.Errorf("client span %s linked under panicked span %s", sp.SpanID, sp.ParentSpanID)
			}
		}
	}
	if linked != 0 {
		t.Errorf("%d of %d client spans with a fresh context have a parent, want none", linked, later*10)
	}

	text, err := s.agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	series := func(route, status string) string {
		return fmt.Sprintf(`go_app_http_server_requests_total{method="GET",route=%q,service_name="svc-a",status_code=%q}`, route, status)
	}
	if got := scrapeValue(t, text, series("/panic", "error")); got != 2*rounds {
		t.Errorf("panicked requests counted %v, want %d\n%s", got, 2*rounds, grepLines(text, "go_app_http_server_requests_total"))
	}
	if got := scrapeValue(t, text, series("/recovered", "500")); got != 10+rounds {
		t.Errorf("recovered requests counted %v, want %d", got, 10+rounds)
	}
}

// Over HTTP/2 net/http resets a panicked handler's stream: the same span,
// the status only when the header frame had gone out.
func TestHTTP2ServerPanic(t *testing.T) {
	for _, v := range []harness.Variant{{Go: "go1.21.13"}, {}, {Go: "go1.27.3", Stripped: true}} {
		t.Run(v.String(), func(t *testing.T) { testHTTP2Panic(t, v) })
	}
}

func testHTTP2Panic(t *testing.T, v harness.Variant) {
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	app, err := harness.StartApp(buildApp(t, "httpserver", v), []string{"OTEL_SERVICE_NAME=h2panic"}, "-tls")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(app.PID()), "--otlp-endpoint", recv.Addr(), "--otlp-insecure")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the app's throwaway certificate
		ForceAttemptHTTP2: true,
	}}
	cases := []struct {
		path   string
		panics bool
		status int // on the span; 0 none
		answer int // the client's; 0 no response
	}{
		{"/panic", true, 0, 0},
		{"/panic?sent=202", true, 202, 202},
		{"/recovered", false, 500, 500},
		{"/hello", false, 200, 200},
	}
	for _, c := range cases {
		got := 0
		if resp, err := client.Get("https://" + app.Addr + c.path); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Fatalf("GET %s: %s, want HTTP/2", c.path, resp.Proto)
			}
			got = resp.StatusCode
		}
		if got != c.answer {
			t.Fatalf("GET %s: answer %d, want %d", c.path, got, c.answer)
		}
	}
	if _, err := recv.WaitFor(len(cases), 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, agent.Log())
	}
	time.Sleep(1500 * time.Millisecond)
	spans := recv.Spans()
	// The requests were sequential: by start time, the spans follow the cases.
	slices.SortFunc(spans, func(a, b harness.Span) int { return a.Start.Compare(b.Start) })
	if len(spans) != len(cases) {
		t.Errorf("%d spans, want %d", len(spans), len(cases))
	}
	for i, c := range cases {
		if i >= len(spans) {
			break
		}
		s := spans[i]
		status, _ := s.Attrs["http.response.status_code"].(int64)
		errType, _ := s.Attrs["error.type"].(string)
		if int(status) != c.status || errType != wantErrorType(c.panics, c.status) || s.Attrs["network.protocol.version"] != "2" {
			t.Errorf("%s: status_code %v, error.type %q, protocol %v; want %d, %q, 2", c.path,
				s.Attrs["http.response.status_code"], errType, s.Attrs["network.protocol.version"], c.status, wantErrorType(c.panics, c.status))
		}
		wantErr := c.panics || c.status >= 500
		if (s.StatusCode == tracepb.Status_STATUS_CODE_ERROR) != wantErr {
			t.Errorf("%s: span status %v", c.path, s.StatusCode)
		}
	}
}

// wantErrorType is a server span's error.type: "panic" for a handler that
// panicked, else the status code of a 5xx, else none.
func wantErrorType(panics bool, status int) string {
	switch {
	case panics:
		return "panic"
	case status >= 500:
		return fmt.Sprint(status)
	}
	return ""
}
