package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golens/golens/metrics"
	"github.com/golens/golens/test/harness"
)

// golens' own listeners (metrics, remote sampling, pprof) cut off clients
// that hold a connection without finishing their request: headers trickled
// in (slowloris) within ReadHeaderTimeout, a body that never comes within
// ReadTimeout; headers over MaxHeaderBytes are refused. The agent keeps
// serving scrapes and tracing meanwhile, and pprof is on its own listener
// only.
func TestListenerLimits(t *testing.T) {
	bin := buildApp(t, "httpserver", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	app, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=limits"})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	samplingAddr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	pprofAddr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(app.PID()),
		"--otlp-endpoint", recv.Addr(), "--otlp-insecure",
		"--sampling-server-addr", samplingAddr, "--pprof", "--pprof-addr", pprofAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}

	// pprof: on --pprof-addr, not on the metrics listener; and nothing but
	// pprof there.
	for _, c := range []struct {
		addr, path string
		want       int
	}{
		{agent.MetricsAddr, "/debug/pprof/goroutine?debug=2", http.StatusNotFound},
		{agent.MetricsAddr, "/debug/pprof/", http.StatusNotFound},
		{pprofAddr, "/debug/pprof/goroutine?debug=2", http.StatusOK},
		{pprofAddr, "/metrics", http.StatusNotFound},
	} {
		resp, err := http.Get("http://" + c.addr + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s%s: %d, want %d", c.addr, c.path, resp.StatusCode, c.want)
		}
		if c.want == http.StatusOK && !strings.Contains(string(body), "goroutine ") {
			t.Errorf("GET %s%s: no goroutine dump: %.80q", c.addr, c.path, body)
		}
	}

	// Headers over MaxHeaderBytes are refused, on every listener.
	for _, addr := range []string{agent.MetricsAddr, samplingAddr, pprofAddr} {
		req, err := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Big", strings.Repeat("a", 2*metrics.MaxHeaderBytes))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s: %d KiB of headers answered %d, want 431", addr, 2*metrics.MaxHeaderBytes>>10, resp.StatusCode)
		}
	}

	// Every listener, both kinds of stalled client, at once.
	listeners := map[string]string{"metrics": agent.MetricsAddr, "sampling": samplingAddr, "pprof": pprofAddr}
	stalls := []struct {
		name   string
		send   string
		drip   bool          // keep sending a header line every 500 ms
		cutoff time.Duration // when the agent must have closed it
	}{
		{"headers never finished", "GET / HTTP/1.1\r\nHost: golens\r\n", true, metrics.ReadHeaderTimeout},
		{"body never sent", "POST / HTTP/1.1\r\nHost: golens\r\nContent-Length: 1000\r\n\r\n0123456789", false, metrics.ReadTimeout},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	closedAfter := map[string]time.Duration{}
	for lname, addr := range listeners {
		for _, s := range stalls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := lname + ": " + s.name
				d, err := stall(addr, s.send, s.drip, s.cutoff+5*time.Second)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("%s: %v", key, err)
					return
				}
				closedAfter[key] = d
				if d < s.cutoff-time.Second || d > s.cutoff+2*time.Second {
					t.Errorf("%s: closed by the agent after %s, want %s", key, d.Round(10*time.Millisecond), s.cutoff)
				}
			}()
		}
	}
	// Meanwhile scrapes are answered and the target is traced.
	time.Sleep(time.Second)
	text, err := agent.Metrics()
	if err != nil || !strings.Contains(text, "golens_targets 1\n") {
		t.Errorf("scrape while clients stall: %v\n%.200s", err, text)
	}
	resp, err := http.Get("http://" + app.Addr + "/echo/while-stalled")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wg.Wait()
	for k, d := range closedAfter {
		t.Logf("%s: closed after %s", k, d.Round(10*time.Millisecond))
	}
	spans, err := recv.WaitFor(1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 1 || spans[0].Attrs["url.path"] != "/echo/while-stalled" {
		t.Errorf("spans: %+v, want one for /echo/while-stalled", spans)
	}
}

// stall connects to addr, sends the start of a request and then nothing
// more (or, with drip, a header line every 500 ms), and returns how long it
// took the server to close the connection; an error past limit.
func stall(addr, send string, drip bool, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := io.WriteString(c, send); err != nil {
		return 0, err
	}
	done := make(chan struct{})
	defer close(done)
	if drip {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				case <-time.After(500 * time.Millisecond):
				}
				if _, err := fmt.Fprintf(c, "X-Drip-%d: 1\r\n", i); err != nil {
					return
				}
			}
		}()
	}
	// Whatever the server answers, read on until it closes.
	c.SetReadDeadline(start.Add(limit))
	_, err = io.Copy(io.Discard, bufio.NewReader(c))
	if err != nil && !isReset(err) {
		return 0, fmt.Errorf("still open after %s: %v", limit, err)
	}
	return time.Since(start), nil
}

// isReset: the server closed while the client's bytes were unread.
func isReset(err error) bool { return strings.Contains(err.Error(), "connection reset") }
