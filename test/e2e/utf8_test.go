package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// startWatched starts the httpserver app with env and an agent exporting
// to a fresh receiver (a grpc-go server decoding with the generated OTLP
// types, so protobuf-go's UTF-8 check applies).
func startWatched(t *testing.T, env []string, args ...string) (*harness.App, *harness.Agent, *harness.Receiver) {
	t.Helper()
	bin := buildApp(t, "httpserver", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recv.Close)
	app, err := harness.StartApp(bin, append([]string{"GODEBUG=httpmuxgo121=0"}, env...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Stop)
	agent, err := harness.StartAgent(agentBin, nil, append([]string{"--pid", fmt.Sprint(app.PID()),
		"--otlp-endpoint", recv.Addr(), "--otlp-insecure"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Stop(5 * time.Second) })
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	return app, agent, recv
}

// getStatus sends GET rawPath (already escaped) and checks the status.
func getStatus(t *testing.T, app *harness.App, rawPath string, status int) {
	t.Helper()
	resp, err := http.Get("http://" + app.Addr + rawPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("GET %s: status %d, want %d", rawPath, resp.StatusCode, status)
	}
}

// One request for invalid UTF-8, and one whose 'é' straddles the end of
// the probe's 128-byte path buffer, among normal requests: every span
// arrives (none of the batch is rejected), with the path as valid UTF-8.
func TestInvalidUTF8PathsExported(t *testing.T) {
	app, agent, recv := startWatched(t, []string{"OTEL_SERVICE_NAME=utf8svc"})

	// 127 bytes, then é: the probe copies its first byte as the 128th.
	long := "/echo/" + strings.Repeat("a", 121)
	type want struct {
		raw, path string
		status    int
		truncated []any
	}
	var reqs []want
	for i := range 4 {
		p := fmt.Sprintf("/echo/utf8-before-%d", i)
		reqs = append(reqs, want{raw: p, path: p, status: 200})
	}
	reqs = append(reqs,
		want{raw: "/%ff%fe", path: "/\uFFFD\uFFFD", status: 404},
		want{raw: "/echo/caf%C3%A9-%e9", path: "/echo/café-\uFFFD", status: 200},
		want{raw: long + "%C3%A9", path: long, status: 200, truncated: []any{"path"}},
	)
	for i := range 4 {
		p := fmt.Sprintf("/echo/utf8-after-%d", i)
		reqs = append(reqs, want{raw: p, path: p, status: 200})
	}
	for _, r := range reqs {
		getStatus(t, app, r.raw, r.status)
	}
	if _, err := recv.WaitFor(len(reqs), 10*time.Second); err != nil {
		t.Fatalf("%v\nagent log:\n%s", err, agent.Log())
	}
	time.Sleep(500 * time.Millisecond) // nothing more may come
	spans := recv.Spans()
	if len(spans) != len(reqs) {
		t.Errorf("%d spans for %d requests", len(spans), len(reqs))
	}
	byPath := make(map[string]harness.Span)
	for _, s := range spans {
		byPath[s.Attrs["url.path"].(string)] = s
	}
	for _, r := range reqs {
		s, ok := byPath[r.path]
		if !ok {
			t.Errorf("GET %s: no span with url.path %q", r.raw, r.path)
			continue
		}
		if got := s.Attrs["http.response.status_code"]; got != int64(r.status) {
			t.Errorf("GET %s: status %v, want %d", r.raw, got, r.status)
		}
		got, _ := s.Attrs["golens.truncated"].([]any)
		if !slices.Equal(got, r.truncated) {
			t.Errorf("GET %s: golens.truncated %v, want %v", r.raw, got, r.truncated)
		}
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if got := scrapeValue(t, text, "golens_spans_failed_total"); got != 0 {
		t.Errorf("golens_spans_failed_total %v, want 0", got)
	}
}
