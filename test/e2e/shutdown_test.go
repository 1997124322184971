package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// startExport starts the httpserver target and golens exporting to recv.
func startExport(t *testing.T, recv *harness.Receiver, args ...string) (*harness.App, *harness.Agent) {
	t.Helper()
	app, err := harness.StartApp(buildApp(t, "httpserver", harness.Variant{}), []string{"OTEL_SERVICE_NAME=exportsvc"})
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
	return app, agent
}

// waitSeries polls /metrics until series has exactly the value want.
func waitSeries(t *testing.T, agent *harness.Agent, series string, want float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		text, err := agent.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		got := scrapeValue(t, text, series)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", series, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var unexportedRe = regexp.MustCompile(`span flush incomplete.* unexported=(\d+)`)

// A collector that never answers: on SIGTERM golens exits within
// --shutdown-timeout, and its last word counts exactly the spans it could
// not export, those of the batch being sent included.
func TestShutdownUnexported(t *testing.T) {
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	recv.SetDelay(time.Hour)
	const grace = 2 * time.Second
	app, agent := startExport(t, recv, "--shutdown-timeout", grace.String(), "--otlp-timeout", "1m")
	const inFlight, queued = 7, 5
	for i := 0; i < inFlight; i++ {
		get(t, app.Addr, "/hello")
	}
	// The batch goes out a second after its first span, and hangs.
	deadline := time.Now().Add(5 * time.Second)
	for recv.Calls() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no export started\n%s", agent.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < queued; i++ {
		get(t, app.Addr, "/hello")
	}
	waitSeries(t, agent, "golens_export_queue_length", queued, 5*time.Second)

	code, took, err := agent.Stop(grace + 5*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, agent.Log())
	}
	if code != 0 {
		t.Errorf("exit code %d\n%s", code, agent.Log())
	}
	// Detaching the probes comes first; then at most the grace.
	if took > grace+1500*time.Millisecond {
		t.Errorf("exit took %s with --shutdown-timeout=%s", took, grace)
	}
	m := unexportedRe.FindStringSubmatch(agent.Log())
	if m == nil || m[1] != fmt.Sprint(inFlight+queued) {
		t.Errorf("want the log to count %d unexported spans:\n%s", inFlight+queued, agent.Log())
	}
	if n := len(recv.Spans()); n != 0 {
		t.Errorf("the hanging collector accepted %d spans", n)
	}
	if strings.Count(agent.Log(), "span flush incomplete") != 1 {
		t.Errorf("want one line about the flush:\n%s", agent.Log())
	}
}

// A collector that answers after 12 s gets the batch when --otlp-timeout
// gives it 15 s: the timeout is honoured as given, not capped.
func TestSlowCollector(t *testing.T) {
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	recv.SetDelay(12 * time.Second)
	app, agent := startExport(t, recv, "--otlp-timeout", "15s")
	const n = 3
	for i := 0; i < n; i++ {
		get(t, app.Addr, "/hello")
	}
	if _, err := recv.WaitFor(n, 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, agent.Log())
	}
	waitSeries(t, agent, "golens_spans_exported_total", n, 2*time.Second)
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if v := scrapeValue(t, text, "golens_spans_failed_total"); v != 0 {
		t.Errorf("golens_spans_failed_total %v, want 0", v)
	}
	if calls := recv.Calls(); calls != 1 {
		t.Errorf("%d exports, want 1 (no retry)", calls)
	}
}

// A full export queue drops spans, counted under queue_full; with the
// collector hanging, every span served is accounted for exactly: dropped
// for a full queue, or left unexported at shutdown. The requests fail
// (5xx), so their spans are critical: backpressure, which thins healthy
// ones first, lets them fill the queue to the last place.
func TestExportQueueFull(t *testing.T) {
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	recv.SetDelay(time.Hour)
	const queue, served = 10, 60
	app, agent := startExport(t, recv, "--export-queue-size", fmt.Sprint(queue), "--shutdown-timeout", "1s", "--otlp-timeout", "1m")
	get(t, app.Addr, "/hello")
	deadline := time.Now().Add(5 * time.Second)
	for recv.Calls() == 0 { // the first batch hangs at the collector
		if time.Now().After(deadline) {
			t.Fatalf("no export started\n%s", agent.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 1; i < served; i++ {
		get(t, app.Addr, "/status/500")
	}
	waitSeries(t, agent, `golens_spans_dropped_total{reason="queue_full"}`, served-1-queue, 10*time.Second)
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if got := scrapeValue(t, text, "golens_export_queue_length"); got != queue {
		t.Errorf("golens_export_queue_length %v, want the queue's %d", got, queue)
	}
	if _, _, err := agent.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	m := unexportedRe.FindStringSubmatch(agent.Log())
	if m == nil || m[1] != fmt.Sprint(queue+1) {
		t.Errorf("want %d unexported at shutdown (the queue and the batch in flight):\n%s", queue+1, agent.Log())
	}
}

// SIGTERM flushes what is queued: spans of requests served just before it
// (still in the export batch, whose timer has not fired) all arrive, and
// the agent exits 0 well within --shutdown-timeout.
func TestShutdownFlushes(t *testing.T) {
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	app, agent := startExport(t, recv, "--shutdown-timeout", "4s")
	const n = 20
	for i := range n {
		get(t, app.Addr, fmt.Sprintf("/echo/flush-%d", i))
	}
	code, took, err := agent.Stop(5 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("exit %d after %s: %v\n%s", code, took, err, agent.Log())
	}
	if took > 4*time.Second {
		t.Errorf("exit took %s with --shutdown-timeout=4s", took)
	}
	got := map[string]int{}
	for _, s := range recv.Spans() {
		got[fmt.Sprint(s.Attrs["url.path"])]++
	}
	for i := range n {
		if p := fmt.Sprintf("/echo/flush-%d", i); got[p] != 1 {
			t.Errorf("%s: %d spans after SIGTERM, want 1", p, got[p])
		}
	}
	if strings.Contains(agent.Log(), "span flush incomplete") {
		t.Errorf("flush reported incomplete:\n%s", agent.Log())
	}
}
