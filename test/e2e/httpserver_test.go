package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/golens/golens/test/harness"
)

// request is one request the test sends and what its span must show.
type request struct {
	name        string
	method      string
	path        string // unique per request: the key to find its span
	traceparent string // sent as is when non-empty
	extraHdrs   int    // filler headers sent before traceparent
	status      int
	minDur      time.Duration
	// expectations on ids
	wantTrace, wantParent string // from the traceparent; empty: fresh ids
	// unsampled: the caller's traceparent says "not sampled", so golens
	// follows it and exports no span (metrics still count the request).
	unsampled bool
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func serverRequests(tag string) []request {
	var rs []request
	// Valid traceparents: the trace continues with the sender as parent.
	for i := 0; i < 5; i++ {
		tid, pid := randHex(16), randHex(8)
		rs = append(rs, request{
			name: fmt.Sprintf("traceparent-%d", i), method: "GET",
			path:        fmt.Sprintf("/echo/%s-tp-%d", tag, i),
			traceparent: "00-" + tid + "-" + pid + "-01",
			status:      200, wantTrace: tid, wantParent: pid,
		})
	}
	// An unsampled parent is followed: no span. An error under an
	// unsampled parent is critical and kept all the same.
	tid, pid := randHex(16), randHex(8)
	rs = append(rs, request{name: "traceparent-unsampled", method: "GET", path: "/echo/" + tag + "-unsampled",
		traceparent: "00-" + tid + "-" + pid + "-00", status: 200, unsampled: true})
	tid, pid = randHex(16), randHex(8)
	rs = append(rs, request{name: "traceparent-unsampled-error", method: "GET", path: "/status/502",
		traceparent: "00-" + tid + "-" + pid + "-00", status: 502, wantTrace: tid, wantParent: pid})
	// A traceparent behind ~20 KB of other headers is still found, in
	// whichever map layout this Go release uses.
	tid, pid = randHex(16), randHex(8)
	rs = append(rs, request{name: "traceparent-many-headers", method: "GET", path: "/echo/" + tag + "-many",
		traceparent: "00-" + tid + "-" + pid + "-01", extraHdrs: 200, status: 200, wantTrace: tid, wantParent: pid})
	// No traceparent, or a malformed one: a new trace, no parent.
	for i := 0; i < 5; i++ {
		rs = append(rs, request{name: fmt.Sprintf("fresh-%d", i), method: "GET",
			path: fmt.Sprintf("/echo/%s-fresh-%d", tag, i), status: 200})
	}
	for i, bad := range []string{
		"garbage",
		"00-" + strings.Repeat("0", 32) + "-" + randHex(8) + "-01",  // all-zero trace id
		"00-" + randHex(16) + "-" + strings.Repeat("0", 16) + "-01", // all-zero parent id
		"00-" + strings.ToUpper(randHex(16)) + "-" + randHex(8) + "-01",
		"ff-" + randHex(16) + "-" + randHex(8) + "-01",
		"00-" + randHex(16) + "-" + randHex(8) + "-01-extra",
	} {
		rs = append(rs, request{name: fmt.Sprintf("malformed-%d", i), method: "GET",
			path: fmt.Sprintf("/echo/%s-bad-%d", tag, i), traceparent: bad, status: 200})
	}
	rs = append(rs,
		request{name: "post", method: "POST", path: "/echo/" + tag + "-post", status: 200},
		request{name: "hello-written-200", method: "GET", path: "/hello", status: 200},
		request{name: "404", method: "GET", path: "/status/404", status: 404},
		request{name: "503", method: "GET", path: "/status/503", status: 503},
		request{name: "500", method: "DELETE", path: "/status/500", status: 500},
		request{name: "slow", method: "GET", path: "/sleep", status: 200, minDur: 120 * time.Millisecond},
	)
	return rs
}

func send(t *testing.T, base string, r request) {
	t.Helper()
	url := base + r.path
	if r.path == "/sleep" {
		url += "?ms=120"
	}
	req, err := http.NewRequest(r.method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < r.extraHdrs; i++ {
		req.Header.Set(fmt.Sprintf("X-Filler-%03d", i), strings.Repeat("x", 100))
	}
	if r.traceparent != "" {
		req.Header.Set("traceparent", r.traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != r.status {
		t.Fatalf("%s: status %d, want %d", r.name, resp.StatusCode, r.status)
	}
}

func TestHTTPServerSpans(t *testing.T) {
	variants := []harness.Variant{{}, {Stripped: true}, {PIE: true},
		// The classic map layout the header walk also reads, where it
		// is still an option; and a program linked by the C toolchain
		// (anything using cgo), dynamically against libc.
		{Go: "go1.25.14", Experiment: "noswissmap"}, {Go: "go1.25.14", Experiment: "noswissmap", Stripped: true},
		{External: true}, {External: true, PIE: true, Stripped: true}}
	for _, v := range variants {
		t.Run(v.String(), func(t *testing.T) { testServerSpans(t, v) })
	}
}

func testServerSpans(t *testing.T, v harness.Variant) {
	bin := buildApp(t, "httpserver", v)
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	// The app's go.mod says go 1.21, which keeps the Go 1.21 ServeMux (no
	// Request.Pattern) even on new toolchains; ask for the current one.
	app, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=checkout", "GODEBUG=httpmuxgo121=0"})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()

	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(app.PID()),
		"--otlp-endpoint", recv.Addr(), "--otlp-insecure")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second) // on failure; a no-op after the SIGTERM check below
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}

	reqs := serverRequests(strings.ReplaceAll(v.String(), ".", "_"))
	base := "http://" + app.Addr
	sent := make(map[string]time.Time)
	for _, r := range reqs {
		sent[r.path] = time.Now()
		send(t, base, r)
	}
	want := 0
	for _, r := range reqs {
		if !r.unsampled {
			want++
		}
	}
	spans, err := recv.WaitFor(want, 10*time.Second)
	if err != nil {
		t.Fatalf("%v\nagent log:\n%s", err, agent.Log())
	}
	// Nothing more than one span per sampled request may arrive.
	time.Sleep(1500 * time.Millisecond)
	spans = recv.Spans()
	if len(spans) != want {
		t.Errorf("got %d spans for %d sampled requests", len(spans), want)
	}
	byPath := make(map[string][]harness.Span)
	for _, s := range spans {
		p, _ := s.Attrs["url.path"].(string)
		byPath[p] = append(byPath[p], s)
	}
	traceIDs := make(map[string]string)
	for _, r := range reqs {
		got := byPath[r.path]
		if r.unsampled {
			if len(got) != 0 {
				t.Errorf("%s: %d spans for a request whose parent was not sampled", r.name, len(got))
			}
			continue
		}
		if len(got) != 1 {
			t.Errorf("%s: %d spans for %s, want exactly 1", r.name, len(got), r.path)
			continue
		}
		s := got[0]
		checkServerSpan(t, r, s, app.PID(), sent[r.path])
		if prev, dup := traceIDs[s.TraceID]; dup {
			t.Errorf("%s: trace id %s already used by %s", r.name, s.TraceID, prev)
		}
		traceIDs[s.TraceID] = r.name
	}

	// Metrics count every request, sampled or not.
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if got := scrapeValue(t, text, `golens_sampling_decisions_total{reason="parent_not_sampled"}`); got != 1 {
		t.Errorf("parent_not_sampled decisions %v, want 1", got)
	}
	var counted float64
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "go_app_http_server_requests_total{") {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			counted += v
		}
	}
	if counted != float64(len(reqs)) {
		t.Errorf("go_app_http_server_requests_total sums to %v, want all %d requests", counted, len(reqs))
	}

	code, took, err := agent.Stop(5 * time.Second)
	if err != nil || code != 0 {
		t.Errorf("SIGTERM: exit code %d after %s (%v)\n%s", code, took, err, agent.Log())
	}
}

func checkServerSpan(t *testing.T, r request, s harness.Span, pid int, sentAt time.Time) {
	t.Helper()
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: "+format, append([]any{r.name}, args...)...)
	}
	if s.Kind != tracepb.Span_SPAN_KIND_SERVER {
		errorf("kind %v, want server", s.Kind)
	}
	if r.wantTrace != "" {
		if s.TraceID != r.wantTrace {
			errorf("trace id %s, want %s from traceparent", s.TraceID, r.wantTrace)
		}
		if s.ParentSpanID != r.wantParent {
			errorf("parent %q, want %s from traceparent", s.ParentSpanID, r.wantParent)
		}
	} else {
		if s.ParentSpanID != "" {
			errorf("parent %s on a fresh trace", s.ParentSpanID)
		}
		if s.TraceID == strings.Repeat("0", 32) || len(s.TraceID) != 32 {
			errorf("bad fresh trace id %q", s.TraceID)
		}
		if r.traceparent != "" && strings.Contains(r.traceparent, s.TraceID) {
			errorf("trace id %s taken from a malformed traceparent", s.TraceID)
		}
	}
	if s.SpanID == strings.Repeat("0", 16) || len(s.SpanID) != 16 || s.SpanID == r.wantParent {
		errorf("bad span id %q", s.SpanID)
	}
	if got := s.Attrs["http.request.method"]; got != r.method {
		errorf("method %v, want %s", got, r.method)
	}
	if got := s.Attrs["http.response.status_code"]; got != int64(r.status) {
		errorf("status %v, want %d", got, r.status)
	}
	wantStatus := tracepb.Status_STATUS_CODE_UNSET
	if r.status >= 500 {
		wantStatus = tracepb.Status_STATUS_CODE_ERROR
	}
	if s.StatusCode != wantStatus {
		errorf("span status %v, want %v", s.StatusCode, wantStatus)
	}
	if got := s.Attrs["network.protocol.version"]; got != "1.1" {
		errorf("network.protocol.version %v, want 1.1", got)
	}
	if got := s.Attrs["client.address"]; got != "127.0.0.1" {
		errorf("client.address %v, want 127.0.0.1", got)
	}
	if got := s.Attrs["server.address"]; got != "127.0.0.1" {
		errorf("server.address %v, want 127.0.0.1", got)
	}
	if _, ok := s.Attrs["server.port"].(int64); !ok {
		errorf("no server.port")
	}
	// Route and name: the ServeMux pattern where Go records it (1.23+).
	route, hasRoute := s.Attrs["http.route"]
	if goMinorOf(s.Resource["process.runtime.version"]) >= 23 {
		want := routeOf(r.path)
		if route != want {
			errorf("http.route %v, want %s", route, want)
		}
		if s.Name != r.method+" "+want {
			errorf("name %q, want %q", s.Name, r.method+" "+want)
		}
	} else if hasRoute || s.Name != r.method {
		errorf("name %q route %v; this Go has no Request.Pattern", s.Name, route)
	}
	// Duration: inside the client's own measurement, above the handler's sleep.
	if d := s.Duration(); d <= 0 || d < r.minDur || d > time.Since(sentAt) {
		errorf("duration %s outside (%s, %s]", d, r.minDur, time.Since(sentAt))
	}
	if s.Start.Before(sentAt.Add(-time.Second)) || s.Start.After(time.Now()) {
		errorf("start %s not near send time %s", s.Start, sentAt)
	}
	if got := s.Resource["service.name"]; got != "checkout" {
		errorf("service.name %v, want checkout (from the target's OTEL_SERVICE_NAME)", got)
	}
	if got := s.Resource["process.pid"]; got != int64(pid) {
		errorf("process.pid %v, want %d", got, pid)
	}
	if _, ok := s.Resource["host.name"].(string); !ok {
		errorf("no host.name")
	}
}

func routeOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/echo/"):
		return "/echo/"
	case strings.HasPrefix(path, "/status/"):
		return "/status/"
	}
	return path
}

func goMinorOf(v any) int {
	s, _ := v.(string)
	var minor int
	fmt.Sscanf(s, "go1.%d", &minor)
	return minor
}
