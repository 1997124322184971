package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golens/golens/test/harness"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// mode is one way of serving the same routes.
type mode struct {
	Name  string
	App   string // binary built from test/apps
	Agent bool   // attach golens to the app
	OTel  bool   // the app exports its own spans (otelhttp)
	// Chain: the load goes to /chain of the app (A), which calls the load's
	// path on a second process of the same binary (B). With Agent, one
	// golens watches both.
	Chain bool
	// Inject: golens runs with --inject-context (Agent only), so A's call
	// to B carries a traceparent added on the wire by its sk_msg program.
	Inject bool
	// AgentEnv is added to golens' environment (Agent only).
	AgentEnv []string
	// AgentBin, when set, is the golens binary run instead of env's.
	AgentBin string
	// PauseAgent stops golens (SIGSTOP) for the measured requests and
	// resumes it after: the probes still run and fill the ring buffer, but
	// the agent takes no CPU while they are timed (Agent only).
	PauseAgent bool
	// AgentArgs are added to golens' arguments (Agent only).
	AgentArgs []string
	// OwnReceiver: the spans go to a receiver in a process of its own
	// (otlpsink, counting only), not to one in the bench's process, whose
	// decoding and GC would delay the client timing the requests.
	OwnReceiver bool
}

// chainCalls is what one chained request runs through instrumented code: A's
// server, A's client and B's server, each one span.
const chainCalls = 3

// spansPerRequest is how many spans one request of m should yield.
func (m mode) spansPerRequest() int {
	if m.Chain {
		return chainCalls
	}
	return 1
}

// load is the traffic of one round.
type load struct {
	Warmup, Requests int
	Path             string
}

// round is what one round of one mode measured.
type round struct {
	P50, P99    time.Duration
	Throughput  float64       // requests per second
	TargetCPU   time.Duration // per request
	HitsPerReq  float64       // agent only
	AgentCPU    time.Duration // per request; agent only
	AgentPeak   uint64        // VmHWM in bytes; agent only
	Spans       int           // spans received; agent and otelhttp
	SpansWanted int
	Prog        progTime           // golens' eBPF programs during the warm-up; agent only
	ProgSplit   hitSplit           // Prog's runs per warm-up request; agent only
	CalleeCPU   time.Duration      // B's part of TargetCPU; chain only
	Linked      int                // traces A server → A client → B server; chain agent only
	Sent        int                // requests sent, warm-up included
	Injected    float64            // golens_inject_total{result="injected"}; inject only
	Skipped     map[string]float64 // golens_inject_total{result="skipped"} by reason, non-zero only; inject only
	// AgentLosses are golens' own loss counters at the end of the round
	// (name without golens_ prefix: value), to tell where spans went.
	AgentLosses string
}

// env is what every round shares.
type env struct {
	AgentBin  string
	Sink      string // test/apps/otlpsink, for modes with OwnReceiver
	Sampling  string // golens --sampling-strategies file
	Load      load
	ChainLoad load // for chain modes; Path is what A calls on B
}

// load is the traffic of mode m.
func (e env) load(m mode) load {
	if m.Chain {
		return e.ChainLoad
	}
	return e.Load
}

// Service names of the chained apps, so that their spans tell them apart.
const (
	serviceA = "chain-a"
	serviceB = "chain-b"
)

// sampleAll is a Jaeger strategies file that keeps every trace, so golens
// exports a span per request as otelhttp with AlwaysSample does. (golens'
// own default keeps at most 1000 traces/s per service.)
const sampleAll = `{"default_strategy": {"type": "probabilistic", "param": 1}}`

// Spans reach the receiver within about a second: both golens and, as the
// benchmark configures it, otelhttp's batch processor flush every second.
// Waiting for them ends when all have come, when none came for spanQuiet
// (the rest are lost), or after spanWait.
const (
	spanWait  = 20 * time.Second
	spanQuiet = 3 * time.Second
)

// otelBatchDelay is OTEL_BSP_SCHEDULE_DELAY for otelhttp: golens' flush
// interval, instead of the SDK's 5 s, so both export on the same cadence and
// a round need not wait 5 s for the last batch.
const otelBatchDelay = "1000"

// runRound starts m's app (and golens for the agent mode), sends the warm-up
// and the measured requests one at a time over one keep-alive connection,
// and reads CPU time before and after the measured requests. A chain mode
// starts B, then A, and reads both.
func runRound(e env, m mode) (round, error) {
	ld := e.load(m)
	perReq := m.spansPerRequest()
	var recv receiver
	if m.Agent || m.OTel {
		var err error
		if m.OwnReceiver {
			recv, err = startSink(e.Sink)
		} else {
			recv, err = harness.NewReceiver()
		}
		if err != nil {
			return round{}, fmt.Errorf("start OTLP receiver: %w", err)
		}
		defer recv.Close()
	}

	appEnv := []string{"GODEBUG=httpmuxgo121=0"}
	var callee *harness.App
	if m.Chain {
		var err error
		if callee, err = harness.StartApp(m.App, append(appEnv, "OTEL_SERVICE_NAME="+serviceB)); err != nil {
			return round{}, fmt.Errorf("start %s as B: %w", m.App, err)
		}
		defer callee.Stop()
		appEnv = append(appEnv, "OTEL_SERVICE_NAME="+serviceA)
	}
	if m.OTel {
		appEnv = append(appEnv,
			"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+recv.Addr(),
			"OTEL_SERVICE_NAME="+m.Name,
			"OTEL_BSP_SCHEDULE_DELAY="+otelBatchDelay)
	}
	app, err := harness.StartApp(m.App, appEnv)
	if err != nil {
		return round{}, fmt.Errorf("start %s: %w", m.App, err)
	}
	appStopped := false
	defer func() {
		if !appStopped {
			app.Stop()
		}
	}()

	var agent *harness.Agent
	agentStopped := false
	if m.Agent {
		args := []string{"--pid", strconv.Itoa(app.PID())}
		if callee != nil {
			// Each keeps its own OTEL_SERVICE_NAME: no --service-name.
			args = append(args, "--pid", strconv.Itoa(callee.PID()))
		} else {
			args = append(args, "--service-name", "bench")
		}
		if m.Inject {
			args = append(args, "--inject-context")
		}
		bin := e.AgentBin
		if m.AgentBin != "" {
			bin = m.AgentBin
		}
		agent, err = harness.StartAgentEnv(bin, m.AgentEnv, nil, append(append(args,
			"--otlp-endpoint", recv.Addr(), "--otlp-insecure",
			"--sampling-strategies", e.Sampling), m.AgentArgs...)...)
		if err != nil {
			return round{}, fmt.Errorf("start golens: %w", err)
		}
		defer func() {
			if !agentStopped {
				agent.Stop(5 * time.Second)
			}
		}()
		if err := agent.WaitReady(30 * time.Second); err != nil {
			return round{}, fmt.Errorf("golens did not attach to %s (pid %d): %w", m.App, app.PID(), err)
		}
	}

	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
	}}
	defer client.CloseIdleConnections()
	target := "http://" + app.Addr + ld.Path
	if callee != nil {
		target = "http://" + app.Addr + "/chain?to=" + url.QueryEscape("http://"+callee.Addr+ld.Path)
	}

	var prog *progStats
	if agent != nil {
		if prog, err = startProgStats(agent.Cmd.Process.Pid); err != nil {
			slog.Warn("no eBPF program statistics", "err", err)
		}
	}
	for i := 0; i < ld.Warmup; i++ {
		if _, err := get(client, target); err != nil {
			if prog != nil {
				prog.stop()
			}
			return round{}, fmt.Errorf("warm-up request %d: %w", i, err)
		}
	}
	var progWarmup progTime
	if prog != nil {
		if progWarmup, err = prog.stop(); err != nil {
			slog.Warn("no eBPF program statistics", "err", err)
		}
	}
	// Let the warm-up's spans leave before the measurement, so that their
	// export is not counted against the measured requests.
	if recv != nil {
		if err := waitSpans(recv, perReq*ld.Warmup); err != nil {
			slog.Warn("warm-up spans missing", "mode", m.Name, "err", err)
		}
	}

	var hitsBefore float64
	if agent != nil {
		if hitsBefore, err = probeHits(agent); err != nil {
			return round{}, err
		}
		if hitsBefore == 0 && ld.Warmup > 0 {
			return round{}, fmt.Errorf("golens counted no probe hits for %d warm-up requests: its probes are not attached\n%s", ld.Warmup, agent.Log())
		}
	}
	targetBefore, err := cpuTime(app.PID())
	if err != nil {
		return round{}, err
	}
	var calleeBefore time.Duration
	if callee != nil {
		if calleeBefore, err = cpuTime(callee.PID()); err != nil {
			return round{}, err
		}
	}
	var agentBefore time.Duration
	if agent != nil {
		if agentBefore, err = cpuTime(agent.Cmd.Process.Pid); err != nil {
			return round{}, err
		}
	}

	lat := make([]time.Duration, ld.Requests)
	if m.PauseAgent && agent != nil {
		if err := agent.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			return round{}, fmt.Errorf("stop golens: %w", err)
		}
	}
	start := time.Now()
	for i := range lat {
		if lat[i], err = get(client, target); err != nil {
			if m.PauseAgent && agent != nil {
				agent.Cmd.Process.Signal(syscall.SIGCONT)
			}
			return round{}, fmt.Errorf("request %d: %w", i, err)
		}
	}
	wall := time.Since(start)
	if m.PauseAgent && agent != nil {
		if err := agent.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
			return round{}, fmt.Errorf("resume golens: %w", err)
		}
	}

	// Spans are exported after the requests; that work belongs to them, so
	// CPU is read once every span has arrived.
	sent := ld.Warmup + ld.Requests
	if recv != nil {
		if err := waitSpans(recv, perReq*sent); err != nil {
			slog.Warn("spans missing", "mode", m.Name, "err", err)
		}
	}
	targetAfter, err := cpuTime(app.PID())
	if err != nil {
		return round{}, err
	}
	var calleeAfter time.Duration
	if callee != nil {
		if calleeAfter, err = cpuTime(callee.PID()); err != nil {
			return round{}, err
		}
	}

	r := round{Throughput: float64(len(lat)) / wall.Seconds(), SpansWanted: perReq * sent, Prog: progWarmup, Sent: sent}
	if ld.Warmup > 0 {
		r.ProgSplit = splitHits(progWarmup.ByProg, ld.Warmup)
	}
	slices.Sort(lat)
	r.P50, r.P99 = quantile(lat, 0.50), quantile(lat, 0.99)
	r.CalleeCPU = (calleeAfter - calleeBefore) / time.Duration(len(lat))
	r.TargetCPU = (targetAfter-targetBefore)/time.Duration(len(lat)) + r.CalleeCPU

	if agent != nil {
		hitsAfter, err := probeHits(agent)
		if err != nil {
			return round{}, err
		}
		if hitsAfter <= hitsBefore {
			return round{}, fmt.Errorf("golens counted no probe hits for %d requests: its probes do not fire\n%s", len(lat), agent.Log())
		}
		r.HitsPerReq = (hitsAfter - hitsBefore) / float64(len(lat))
		if r.AgentLosses, err = agentLosses(agent); err != nil {
			return round{}, err
		}
		if m.Inject {
			text, err := agent.Metrics()
			if err != nil {
				return round{}, fmt.Errorf("scrape golens metrics: %w\ngolens log:\n%s", err, agent.Log())
			}
			r.Injected, r.Skipped = injectCounts(seriesWithPrefix(text, "golens_inject_total{"))
		}
		agentAfter, err := cpuTime(agent.Cmd.Process.Pid)
		if err != nil {
			return round{}, err
		}
		r.AgentCPU = (agentAfter - agentBefore) / time.Duration(len(lat))
		if r.AgentPeak, err = peakRSS(agent.Cmd.Process.Pid); err != nil {
			return round{}, err
		}
		// Stopping flushes whatever golens still holds; only then is the
		// count final.
		code, _, err := agent.Stop(10 * time.Second)
		agentStopped = true
		if err != nil || code != 0 {
			return round{}, fmt.Errorf("golens exit: code %d, %v\n%s", code, err, agent.Log())
		}
	}
	if m.OTel {
		// SIGTERM makes the app shut its tracer provider down, flushing.
		app.Stop()
		appStopped = true
	}
	if recv != nil {
		r.Spans = recv.Count()
		if hr, ok := recv.(*harness.Receiver); ok && callee != nil {
			r.Linked = chainedTraces(hr.Spans(), app.PID(), callee.PID())
		}
	}
	return r, nil
}

// chainedTraces counts the traces that hold exactly one chained request as
// golens should export it: A's server span as the root, A's client span
// under it, and B's server span under that client span — which only the
// same-node linker can put there, as no context goes on the wire.
func chainedTraces(spans []harness.Span, pidA, pidB int) int {
	traces := map[string][]harness.Span{}
	for _, s := range spans {
		traces[s.TraceID] = append(traces[s.TraceID], s)
	}
	n := 0
	for _, tr := range traces {
		if len(tr) != chainCalls {
			continue
		}
		var aSrv, aCli, bSrv *harness.Span
		for i, s := range tr {
			switch pid := s.Resource["process.pid"]; {
			case pid == int64(pidA) && s.Kind == tracepb.Span_SPAN_KIND_SERVER:
				aSrv = &tr[i]
			case pid == int64(pidA) && s.Kind == tracepb.Span_SPAN_KIND_CLIENT:
				aCli = &tr[i]
			case pid == int64(pidB) && s.Kind == tracepb.Span_SPAN_KIND_SERVER:
				bSrv = &tr[i]
			}
		}
		if aSrv != nil && aCli != nil && bSrv != nil &&
			aSrv.ParentSpanID == "" && aCli.ParentSpanID == aSrv.SpanID && bSrv.ParentSpanID == aCli.SpanID {
			n++
		}
	}
	return n
}

// get sends one GET, reads the whole body and returns how long that took.
func get(c *http.Client, url string) (time.Duration, error) {
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return d, nil
}

// waitSpans waits until recv holds n spans, or no more arrive.
func waitSpans(recv receiver, n int) error {
	deadline := time.Now().Add(spanWait)
	last := -1
	for time.Now().Before(deadline) {
		got, err := recv.WaitCount(n, spanQuiet)
		if err == nil {
			return nil
		}
		if got == last {
			return err
		}
		last = got
	}
	return fmt.Errorf("received %d spans within %s, want %d", recv.Count(), spanWait, n)
}

// lossCounters are golens' counters of events and spans it lost.
var lossCounters = []string{
	"events_lost_total", "events_decode_errors_total", "orphan_returns_total",
	`spans_dropped_total{reason="queue_full"}`, `spans_dropped_total{reason="backpressure"}`, `spans_dropped_total{reason="shutdown"}`, "spans_failed_total",
}

// agentLosses reads lossCounters from the agent's /metrics.
func agentLosses(a *harness.Agent) (string, error) {
	text, err := a.Metrics()
	if err != nil {
		return "", fmt.Errorf("scrape golens metrics: %w\ngolens log:\n%s", err, a.Log())
	}
	var parts []string
	for _, c := range lossCounters {
		v, err := metricValue(text, "golens_"+c)
		if err != nil {
			parts = append(parts, c+" not exported")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.0f", c, v))
	}
	return strings.Join(parts, ", "), nil
}

// probeHits reads golens_probe_hits_total from the agent's /metrics.
func probeHits(a *harness.Agent) (float64, error) {
	text, err := a.Metrics()
	if err != nil {
		return 0, fmt.Errorf("scrape golens metrics: %w\ngolens log:\n%s", err, a.Log())
	}
	return metricValue(text, "golens_probe_hits_total")
}

// injectCounts splits golens_inject_total series into the requests injected
// and the skips by reason (only those counted).
func injectCounts(series map[string]float64) (injected float64, skipped map[string]float64) {
	skipped = map[string]float64{}
	for k, v := range series {
		switch {
		case strings.Contains(k, `result="injected"`):
			injected += v
		case strings.Contains(k, `result="skipped"`) && v > 0:
			reason := "unknown"
			if _, after, ok := strings.Cut(k, `reason="`); ok {
				reason, _, _ = strings.Cut(after, `"`)
			}
			skipped[reason] += v
		}
	}
	return injected, skipped
}
