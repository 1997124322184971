package e2e

import (
	"crypto/tls"
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

// HTTP/2 (net/http's own server over TLS): spans and metrics carry the
// status the handler wrote, and the 200 net/http sends for a handler that
// wrote nothing, on the oldest and newest Go, with and without symbols.
func TestHTTP2ServerStatus(t *testing.T) {
	for _, v := range []harness.Variant{{Go: "go1.21.13"}, {}, {Stripped: true}, {Go: "go1.27.3"}, {Go: "go1.27.3", Stripped: true}} {
		t.Run(v.String(), func(t *testing.T) { testHTTP2Status(t, v) })
	}
}

func testHTTP2Status(t *testing.T, v harness.Variant) {
	bin := buildApp(t, "httpserver", v)
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	app, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=h2svc"}, "-tls")
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

	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the app's throwaway certificate
		ForceAttemptHTTP2: true,
	}}
	tag := strings.ReplaceAll(v.String(), ".", "_")
	cases := []struct {
		path   string
		status int
	}{
		{"/echo/h2-" + tag, 200}, // the handler writes nothing
		{"/hello", 200},          // written by Write
		{"/status/404", 404},
		{"/status/503", 503},
	}
	for _, c2 := range cases {
		resp, err := c.Get("https://" + app.Addr + c2.path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != c2.status {
			t.Fatalf("GET %s: %s %d, want HTTP/2 and %d", c2.path, resp.Proto, resp.StatusCode, c2.status)
		}
	}
	spans, err := recv.WaitFor(len(cases), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, c2 := range cases {
		var found bool
		for _, s := range spans {
			if s.Attrs["url.path"] != c2.path {
				continue
			}
			found = true
			if got := s.Attrs["http.response.status_code"]; got != int64(c2.status) {
				t.Errorf("%s: http.response.status_code %v, want %d", c2.path, got, c2.status)
			}
			if got := s.Attrs["network.protocol.version"]; got != "2" {
				t.Errorf("%s: network.protocol.version %v, want 2", c2.path, got)
			}
			want := tracepb.Status_STATUS_CODE_UNSET
			if c2.status >= 500 {
				want = tracepb.Status_STATUS_CODE_ERROR
			}
			if s.StatusCode != want {
				t.Errorf("%s: span status %v, want %v", c2.path, s.StatusCode, want)
			}
		}
		if !found {
			t.Errorf("no span for %s", c2.path)
		}
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if v := scrapeValue(t, text, `go_app_http_server_requests_total{method="GET",route="/status/{id}",service_name="h2svc",status_code="404"}`); v != 1 {
		t.Errorf("404s counted %v, want 1", v)
	}
	if strings.Contains(text, `status_code="unknown"`) {
		t.Errorf("a request with an unknown status:\n%s", grepLines(text, "go_app_http_server_requests_total"))
	}
}

// An HTTP/2 client call (net/http's Transport over TLS, as any https call
// to an HTTP/2 server is): A's client span has the status B answered and
// A's server span as parent. B's HTTP/2 server span (same node, both
// watched) is linked into A's trace with exactly A's client span as
// parent: the client probe reads the TCP connection under the *tls.Conn,
// and same-node linking pairs by that connection.
func TestHTTP2Client(t *testing.T) {
	bin := buildApp(t, "httpserver", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	b, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=h2-b"}, "-tls")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	a, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=h2-a"})
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
	for _, status := range []int{201, 503} {
		before := len(recv.Spans())
		tid, parent := randHex(16), randHex(8)
		target := fmt.Sprintf("https://%s/status/%d", b.Addr, status)
		req, _ := http.NewRequest("GET", "http://"+a.Addr+"/chain?to="+url.QueryEscape(target), nil)
		req.Header.Set("traceparent", "00-"+tid+"-"+parent+"-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Fatalf("A answered %d, want B's %d", resp.StatusCode, status)
		}
		spans, err := recv.WaitFor(before+3, 10*time.Second)
		if err != nil {
			t.Fatalf("%v\n%s", err, agent.Log())
		}
		got := byTrace(spans[before:])[tid]
		var aSrv, bSrv harness.Span
		for _, s := range kindOf(spans[before:], tracepb.Span_SPAN_KIND_SERVER) {
			switch s.Resource["service.name"] {
			case "h2-a":
				aSrv = s
			case "h2-b":
				bSrv = s
			}
		}
		cli := kindOf(got, tracepb.Span_SPAN_KIND_CLIENT)
		if aSrv.TraceID != tid || len(cli) != 1 || len(got) != 3 {
			t.Fatalf("%d: trace %s has %d spans, %d client spans, want A's server and client span and B's server span: %+v", status, tid, len(got), len(cli), got)
		}
		c := cli[0]
		if aSrv.ParentSpanID != parent || c.ParentSpanID != aSrv.SpanID || bSrv.ParentSpanID != c.SpanID || bSrv.TraceID != tid {
			t.Errorf("%d: parents A server %s (want %s), A client %s (want %s), B server %s in trace %s (want %s in %s)",
				status, aSrv.ParentSpanID, parent, c.ParentSpanID, aSrv.SpanID, bSrv.ParentSpanID, bSrv.TraceID, c.SpanID, tid)
		}
		if c.Attrs["url.full"] != target || c.Attrs["http.response.status_code"] != int64(status) {
			t.Errorf("%d: client span url.full=%v status=%v", status, c.Attrs["url.full"], c.Attrs["http.response.status_code"])
		}
		if got := c.StatusCode == tracepb.Status_STATUS_CODE_ERROR; got != (status >= 400) {
			t.Errorf("%d: client span error=%v", status, got)
		}
		if bSrv.Attrs["network.protocol.version"] != "2" || bSrv.Attrs["http.response.status_code"] != int64(status) {
			t.Errorf("%d: B's server span protocol %v status %v, want 2 and %d", status, bSrv.Attrs["network.protocol.version"], bSrv.Attrs["http.response.status_code"], status)
		}
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if v := scrapeValue(t, text, `golens_spans_unlinked_total{reason="no_conn"}`); v != 0 {
		t.Errorf("unlinked no_conn %v, want 0", v)
	}
	if v := scrapeValue(t, text, "golens_spans_linked_total"); v != 2 {
		t.Errorf("linked %v, want 2", v)
	}
}
