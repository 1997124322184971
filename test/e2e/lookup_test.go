package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// A watched service holding 16,000 sockets, called over a new connection
// per request: each unseen peer needs a socket-owner lookup (its socket
// tables and every open file), which must not hold up the event reader.
// Every span arrives promptly, none is lost, and the roots whose lookup
// could not answer in time are counted.
func TestSocketLookupOffReader(t *testing.T) {
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	app, err := harness.StartApp(buildApp(t, "httpserver", harness.Variant{}), []string{"OTEL_SERVICE_NAME=manysockets"}, "-hold", "16000")
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

	const n, workers = 200, 4
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/workers; i++ {
				resp, err := client.Get("http://" + app.Addr + "/hello")
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sent := time.Now()
	// A root waits at most the linker's 1 s window, then its batch 1 s.
	if _, err := recv.WaitFor(n, 4*time.Second); err != nil {
		t.Fatalf("%v within %s of the last request\n%s", err, 4*time.Second, agent.Log())
	}
	t.Logf("%d spans within %s of the last request", n, time.Since(sent).Round(time.Millisecond))
	time.Sleep(time.Second)
	if got := len(recv.Spans()); got != n {
		t.Errorf("%d spans, want %d", got, n)
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"golens_events_lost_total", "golens_events_decode_errors_total", "golens_spans_failed_total",
		`golens_spans_dropped_total{reason="queue_full"}`} {
		if v := scrapeValue(t, text, c); v != 0 {
			t.Errorf("%s %v, want 0", c, v)
		}
	}
	// The client is not watched: a root should not wait for its call.
	// Its socket closed (TIME_WAIT) names nobody, and neither does a
	// local port it shares with one of the service's own 8000
	// connections (Linux reuses a port towards another destination),
	// while the server's end of the request's connection is listed. Once
	// that end is gone too, the service's own connection is the only
	// one left with that pair of ports and names it as the caller: a few
	// roots then wait in vain (before, 145 of 200 did).
	busy := scrapeValue(t, text, `golens_spans_unlinked_total{reason="lookup_busy"}`)
	vain := scrapeValue(t, text, `golens_spans_unlinked_total{reason="no_client_span"}`)
	t.Logf("of %d roots, %v went out before their owner lookup answered, %v waited in vain", n, busy, vain)
	if busy > n || vain > n/10 {
		t.Errorf("lookup_busy %v, no_client_span %v of %d spans; want no_client_span at most %d", busy, vain, n, n/10)
	}
}
