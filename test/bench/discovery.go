package main

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/golens/golens/test/harness"
)

// discoveryLoad is what the discovery section does.
type discoveryLoad struct {
	Window time.Duration // length of each idle window
	Idle   int           // idle processes in the second window
	Runs   int           // starts of the target for exec → first span
}

// The discovery section's timings.
const (
	// idleSettle passes between /readyz and an idle window, so that the
	// window holds no leftover of start-up.
	idleSettle = 2 * time.Second
	// pollEvery is how often a starting target is sent a request.
	pollEvery = 5 * time.Millisecond
	// firstSpanWait bounds one start: golens attaches within 2 s and
	// flushes every second.
	firstSpanWait = 15 * time.Second
	// releaseWait bounds the wait for golens to release a killed target.
	releaseWait = 5 * time.Second
	// spanPoll is the longest the span watcher waits between looks at
	// whether it was told to stop.
	spanPoll = 250 * time.Millisecond
)

// discoveryService is the OTEL_SERVICE_NAME of the started targets.
const discoveryService = "bench-discovery"

// idleWindow is what one idle window measured.
type idleWindow struct {
	Idle  int // idle processes the bench started, all alive to the end
	Procs int // processes /proc listed at the start
	Wall  time.Duration
	CPU   time.Duration // golens' user+system time
	// Discovery is how much each golens_discovery_* series grew over the
	// window; nil when golens exports none.
	Discovery map[string]float64
}

// PerMinute is the agent's CPU time per minute of wall time.
func (w idleWindow) PerMinute() time.Duration {
	if w.Wall <= 0 {
		return 0
	}
	return time.Duration(float64(w.CPU) * float64(time.Minute) / float64(w.Wall))
}

// Core is the agent's CPU as a percentage of one core.
func (w idleWindow) Core() float64 {
	if w.Wall <= 0 {
		return 0
	}
	return 100 * float64(w.CPU) / float64(w.Wall)
}

// rescansMetric counts golens' scans of /proc, by reason.
const rescansMetric = "golens_discovery_rescans_total"

// Rescans is how many times golens scanned /proc in the window, whatever
// the reason; ok false when it does not export the count.
func (w idleWindow) Rescans() (float64, bool) { return sumSeries(w.Discovery, rescansMetric) }

// execRun is one start of the target under the discovering agent. Every
// duration but Released is from just before the exec.
type execRun struct {
	PID       int
	Listening time.Duration // the target said "listening on"
	Attached  time.Duration // golens logged "attached" (the line's time stamp)
	SinceExec time.Duration // golens' own since_exec, from the kernel's exec event; 0 if not logged
	FirstReq  time.Duration // the first instrumented request started (its span's start)
	FirstSpan time.Duration // a span of it was at the receiver
	Requests  int           // requests sent until then
	Released  time.Duration // from the kill to golens' release line
}

// discoveryResult is the discovery section: the windows without and with
// the idle processes, and the starts.
type discoveryResult struct {
	Glob    string
	Load    discoveryLoad
	Windows []idleWindow
	Runs    []execRun
}

// runDiscovery measures golens in discovery mode, selecting app by its
// path: its CPU over an idle window with no extra processes, then, with a
// fresh agent, over one with d.Idle idle non-Go processes; then, with that
// agent still running, how long a started app takes to be attached and to
// show up as spans. It returns what it measured even on error.
func runDiscovery(e env, app string, d discoveryLoad) (discoveryResult, error) {
	res := discoveryResult{Glob: app, Load: d}
	if strings.ContainsAny(app, `*?[\`) {
		return res, fmt.Errorf("path %s has glob characters: --exe would not select it alone", app)
	}
	recv, err := harness.NewReceiver()
	if err != nil {
		return res, fmt.Errorf("start OTLP receiver: %w", err)
	}
	defer recv.Close()

	slog.Info("discovery: idle window", "idle_processes", 0, "window", d.Window)
	w, err := idleAgentWindow(e, app, recv, d.Window, nil)
	if err != nil {
		return res, err
	}
	res.Windows = append(res.Windows, w)

	// They sleep long enough to outlive the rest of the section.
	life := idleSettle + d.Window + time.Duration(d.Runs)*(firstSpanWait+releaseWait) + 5*time.Minute
	slog.Info("discovery: starting idle processes", "n", d.Idle)
	idle, err := startIdle(d.Idle, life)
	if err != nil {
		return res, err
	}
	defer idle.stop()

	slog.Info("discovery: idle window", "idle_processes", d.Idle, "window", d.Window)
	agent, err := startDiscoveryAgent(e, app, recv)
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			agent.Stop(5 * time.Second)
		}
	}()
	if w, err = measureIdle(agent, d.Window, idle); err != nil {
		return res, err
	}
	res.Windows = append(res.Windows, w)

	for i := 0; i < d.Runs; i++ {
		r, err := execOnce(agent, recv, app, fmt.Sprintf("/echo/run-%d", i+1))
		if err != nil {
			return res, fmt.Errorf("start %d of %d: %w", i+1, d.Runs, err)
		}
		slog.Info("discovery: start", "n", fmt.Sprintf("%d/%d", i+1, d.Runs), "pid", r.PID,
			"attached", r.Attached, "since_exec", r.SinceExec, "first_span", r.FirstSpan)
		res.Runs = append(res.Runs, r)
	}
	stopped = true
	if code, _, err := agent.Stop(10 * time.Second); err != nil || code != 0 {
		return res, fmt.Errorf("golens exit: code %d, %v\n%s", code, err, agent.Log())
	}
	return res, nil
}

// startDiscoveryAgent starts golens selecting exe (a path: only that
// program) and waits until its initial scan is done.
func startDiscoveryAgent(e env, exe string, recv *harness.Receiver) (*harness.Agent, error) {
	agent, err := harness.StartAgent(e.AgentBin, nil, "--exe", exe,
		"--otlp-endpoint", recv.Addr(), "--otlp-insecure", "--sampling-strategies", e.Sampling)
	if err != nil {
		return nil, fmt.Errorf("start golens: %w", err)
	}
	if err := agent.WaitReady(30 * time.Second); err != nil {
		agent.Stop(5 * time.Second)
		return nil, err
	}
	return agent, nil
}

// idleAgentWindow runs one idle window with an agent of its own.
func idleAgentWindow(e env, exe string, recv *harness.Receiver, window time.Duration, idle *idleProcs) (idleWindow, error) {
	agent, err := startDiscoveryAgent(e, exe, recv)
	if err != nil {
		return idleWindow{}, err
	}
	w, err := measureIdle(agent, window, idle)
	code, _, serr := agent.Stop(10 * time.Second)
	if err != nil {
		return w, err
	}
	if serr != nil || code != 0 {
		return w, fmt.Errorf("golens exit: code %d, %v\n%s", code, serr, agent.Log())
	}
	return w, nil
}

// measureIdle reads the agent's CPU time across window, with nothing
// selected running; the metric scrapes fall outside it.
func measureIdle(agent *harness.Agent, window time.Duration, idle *idleProcs) (idleWindow, error) {
	time.Sleep(idleSettle)
	pid := agent.Cmd.Process.Pid
	w := idleWindow{Procs: procCount()}
	before, err := discoverySeries(agent)
	if err != nil {
		return w, err
	}
	cpu0, err := cpuTime(pid)
	if err != nil {
		return w, fmt.Errorf("golens: %w\n%s", err, agent.Log())
	}
	start := time.Now()
	time.Sleep(window)
	cpu1, err := cpuTime(pid)
	if err != nil {
		return w, fmt.Errorf("golens: %w\n%s", err, agent.Log())
	}
	w.Wall, w.CPU = time.Since(start), cpu1-cpu0
	after, err := discoverySeries(agent)
	if err != nil {
		return w, err
	}
	if len(after) > 0 {
		w.Discovery = seriesDelta(before, after)
	}
	if idle != nil {
		if w.Idle = idle.alive(); w.Idle != len(idle.cmds) {
			return w, fmt.Errorf("only %d of %d idle processes lived through the window", w.Idle, len(idle.cmds))
		}
	}
	return w, nil
}

// discoverySeries scrapes golens' golens_discovery_* series (none when this
// golens has no such metrics).
func discoverySeries(agent *harness.Agent) (map[string]float64, error) {
	text, err := agent.Metrics()
	if err != nil {
		return nil, fmt.Errorf("scrape golens metrics: %w\ngolens log:\n%s", err, agent.Log())
	}
	return seriesWithPrefix(text, "golens_discovery_"), nil
}

// spanSeen is the first batch at the receiver with a span of the started
// target; ok false when none came in time.
type spanSeen struct {
	At    time.Time // when the receiver had it
	Start time.Time // earliest start of the target's spans in the batch
	OK    bool
}

// execOnce starts app, sends it GET path every pollEvery from when it
// listens until the receiver has a span of it, then kills it and waits for
// golens to release it.
func execOnce(agent *harness.Agent, recv *harness.Receiver, app, path string) (execRun, error) {
	// Each request on a new connection, as from a client that came after
	// the attach: no state from before it is needed.
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	seen := len(recv.Spans())

	begin := time.Now()
	a, err := harness.StartApp(app, []string{"OTEL_SERVICE_NAME=" + discoveryService})
	if err != nil {
		return execRun{}, fmt.Errorf("start %s: %w", app, err)
	}
	r := execRun{PID: a.PID(), Listening: time.Since(begin)}
	killed := false
	defer func() {
		if !killed {
			a.Stop()
		}
	}()

	found := make(chan spanSeen, 1)
	stop := make(chan struct{})
	go watchFirstSpan(recv, seen, path, r.PID, begin.Add(firstSpanWait), stop, found)
	var first spanSeen
	waited := false
	defer func() {
		close(stop)
		if !waited {
			<-found
		}
	}()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	url := "http://" + a.Addr + path
	for !waited {
		if _, err := get(client, url); err != nil {
			return r, fmt.Errorf("request %d: %w", r.Requests+1, err)
		}
		r.Requests++
		select {
		case first = <-found:
			waited = true
		case <-tick.C:
		}
	}
	if !first.OK {
		return r, fmt.Errorf("no span of pid %d (%s) at the receiver within %s of its exec\n%s", r.PID, path, firstSpanWait, agent.Log())
	}
	r.FirstSpan = first.At.Sub(begin)
	r.FirstReq = first.Start.Sub(begin)

	rec, err := waitLog(agent, r.PID, time.Second, attachedMsgs...)
	if err != nil {
		return r, err
	}
	at, err := rec.Time()
	if err != nil {
		return r, err
	}
	r.Attached = at.Sub(begin)
	r.SinceExec, _ = rec.Duration("since_exec")

	a.Cmd.Process.Kill()
	killedAt := time.Now()
	a.Cmd.Wait()
	killed = true
	if rec, err = waitLog(agent, r.PID, releaseWait, releasedMsgs...); err != nil {
		return r, err
	}
	if at, err = rec.Time(); err != nil {
		return r, err
	}
	r.Released = at.Sub(killedAt)
	return r, nil
}

// watchFirstSpan waits, until deadline or stop, for a batch at recv (past
// the first seen spans) that holds a span of pid for path, and sends what it
// found, or that it found nothing, on out. Each change at the receiver
// copies its spans once; nothing is copied while nothing arrives, but for
// one look every spanPoll.
func watchFirstSpan(recv *harness.Receiver, seen int, path string, pid int, deadline time.Time, stop <-chan struct{}, out chan<- spanSeen) {
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			out <- spanSeen{}
			return
		default:
		}
		spans, err := recv.WaitFor(seen+1, min(spanPoll, time.Until(deadline)))
		at := time.Now()
		if err != nil {
			continue
		}
		if start, ok := firstSpanOf(spans[seen:], path, pid); ok {
			out <- spanSeen{At: at, Start: start, OK: true}
			return
		}
		seen = len(spans)
	}
	out <- spanSeen{}
}

// firstSpanOf is the earliest start of the spans of pid for path.
func firstSpanOf(spans []harness.Span, path string, pid int) (time.Time, bool) {
	var first time.Time
	for _, s := range spans {
		if s.Attrs["url.path"] != path || s.Resource["process.pid"] != int64(pid) {
			continue
		}
		if first.IsZero() || s.Start.Before(first) {
			first = s.Start
		}
	}
	return first, !first.IsZero()
}

// waitLog waits up to timeout for golens to log one of msgs about pid.
func waitLog(agent *harness.Agent, pid int, timeout time.Duration, msgs ...string) (logRecord, error) {
	deadline := time.Now().Add(timeout)
	for {
		if r, ok := findLog(agent.Log(), pid, msgs...); ok {
			return r, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("golens did not log %q for pid %d within %s\n%s", msgs, pid, timeout, agent.Log())
		}
		time.Sleep(pollEvery)
	}
}

// durationStats are the median and the largest of some durations.
type durationStats struct {
	Median, Max time.Duration
	N           int
}

// statsOf summarises the durations f picks from runs, leaving out those
// not measured (zero).
func statsOf(runs []execRun, f func(execRun) time.Duration) durationStats {
	var v []float64
	var s durationStats
	for _, r := range runs {
		d := f(r)
		if d == 0 {
			continue
		}
		v = append(v, float64(d))
		s.Max = max(s.Max, d)
	}
	s.N = len(v)
	if s.N > 0 {
		s.Median = time.Duration(math.Round(median(v)))
	}
	return s
}

// attachTarget is the target: a new selected process is
// instrumented within 2 s of its start.
const attachTarget = 2 * time.Second

// checks judges the starts against attachTarget, by the time stamp of
// golens' attached line from just before the exec: that is the later,
// stricter of the two measures (since_exec starts at the kernel's exec
// event, after the fork).
func (d discoveryResult) checks() []check {
	at := statsOf(d.Runs, func(r execRun) time.Duration { return r.Attached })
	since := statsOf(d.Runs, func(r execRun) time.Duration { return r.SinceExec })
	value := func(a, s time.Duration) string {
		if at.N == 0 {
			return "no start measured"
		}
		v := ms(a)
		if since.N > 0 {
			v += fmt.Sprintf(" (golens' since_exec %s)", ms(s))
		}
		return v
	}
	return []check{{
		Name:   "new process instrumented, exec → attached, median",
		Value:  value(at.Median, since.Median),
		Target: "< 2 s",
		Pass:   at.N > 0 && at.Median < attachTarget,
	}, {
		Name:   fmt.Sprintf("new process instrumented, exec → attached, max of %d", at.N),
		Value:  value(at.Max, since.Max),
		Target: "< 2 s",
		Pass:   at.N > 0 && at.Max < attachTarget,
	}}
}

func msNum(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/1e6) }
func ms(d time.Duration) string    { return msNum(d) + " ms" }
