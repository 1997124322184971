package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// A reader that cannot keep up loses events in the kernel, never the
// target's requests, and every lost event is counted: with the agent
// stopped (SIGSTOP) while the target serves more requests than the ring
// holds, requests counted by the metrics plus golens_events_lost_total is
// exactly what was served. GOGC=off keeps GC events out of the count.
func TestRingBufferFull(t *testing.T) {
	bin := buildApp(t, "httpserver", harness.Variant{})
	app, err := harness.StartApp(bin, []string{"GOGC=off"})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(app.PID()), "--exporter", "console")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	get(t, app.Addr, "/hello") // attached and read: the ring is empty again
	waitMetric(t, agent, "go_app_http_server_requests_total", 1, 10*time.Second)

	agent.Cmd.Process.Signal(syscall.SIGSTOP)
	// The ring holds 4 MiB; a server event is a few hundred bytes.
	const workers, each = 4, 4000
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{}
			for range each {
				if err := httpGet(c, app.Addr); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	agent.Cmd.Process.Signal(syscall.SIGCONT)
	close(errs)
	for err := range errs {
		t.Fatalf("the target failed a request while the agent was stopped: %v", err)
	}

	const served = 1 + workers*each
	var counted, lost float64
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		text, err := agent.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		counted, lost = sumMetric(text, "go_app_http_server_requests_total"), sumMetric(text, "golens_events_lost_total")
		if counted+lost >= served {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if lost == 0 || counted+lost != served {
		t.Errorf("%d requests served: %v counted, %v events lost; want some lost and the sum exact", served, counted, lost)
	}
}

// A collector that is down fails each export, counted; once it is back,
// the next spans arrive: golens neither gives up on it nor needs a restart.
func TestCollectorDownThenBack(t *testing.T) {
	bin := buildApp(t, "httpserver", harness.Variant{})
	app, err := harness.StartApp(bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	addr, _ := harness.FreeAddr() // the collector's address, nothing there yet
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(app.PID()),
		"--otlp-endpoint", addr, "--otlp-insecure", "--otlp-timeout", "1s")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		get(t, app.Addr, fmt.Sprintf("/echo/down-%d", i))
	}
	waitMetric(t, agent, "golens_spans_failed_total", n, 15*time.Second)

	recv, err := harness.NewReceiverWith(harness.ReceiverOptions{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	for i := range n {
		get(t, app.Addr, fmt.Sprintf("/echo/back-%d", i))
	}
	spans, err := recv.WaitFor(n, 20*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, agent.Log())
	}
	time.Sleep(time.Second) // nothing more may come
	spans = recv.Spans()
	got := map[string]bool{}
	for _, s := range spans {
		got[fmt.Sprint(s.Attrs["url.path"])] = true
	}
	for i := range n {
		if p := fmt.Sprintf("/echo/back-%d", i); !got[p] {
			t.Errorf("no span of %s after the collector came back", p)
		}
	}
	if len(spans) != n {
		t.Errorf("%d spans arrived, want the %d sent after the collector came back", len(spans), n)
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if f, e := sumMetric(text, "golens_spans_failed_total"), sumMetric(text, "golens_spans_exported_total"); f != n || e != n {
		t.Errorf("failed %v, exported %v; want %d and %d", f, e, n, n)
	}
}
