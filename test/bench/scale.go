package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golens/golens/test/harness"
)

// scaleLoad is what the scale section does.
type scaleLoad struct {
	Targets int           // watched processes serving the steady load
	Churn   int           // short-lived processes started and ended during it
	Rate    int           // steady requests per second, over all targets
	Window  time.Duration // the steady window, and the idle one
}

// scaleService is the OTEL_SERVICE_NAME of the scale section's targets.
const scaleService = "bench-scale"

// scalePath is what the steady load requests.
const scalePath = "/hello"

// Goals of the scale section.
const (
	scaleRSSGoal = 100 << 20 // agent RSS at 100 targets
	// settleWait bounds the wait for golens to give back everything of the
	// released targets.
	settleWait = 15 * time.Second
)

// bpfFDs are the eBPF objects a process holds open, by kind, and the
// memory the kernel charged for its maps (fdinfo memlock).
type bpfFDs struct {
	Maps, Progs, Links int
	MapMemlock         uint64
}

func (f bpfFDs) String() string {
	return fmt.Sprintf("%d maps (%.1f MiB memlock), %d programs, %d links", f.Maps, float64(f.MapMemlock)/(1<<20), f.Progs, f.Links)
}

// countBPF reads /proc/PID/fd: what each descriptor links to says whether it
// is a bpf map, program or link, and its fdinfo says which one (its id) and,
// for a map, its memlock. An object held by several descriptors (the ring
// buffer every target's objects share) counts once.
func countBPF(pid int) (bpfFDs, error) {
	var f bpfFDs
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return f, err
	}
	seen := map[string]bool{}
	for _, e := range ents {
		to, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		idKey, n := "", (*int)(nil)
		switch to {
		case "anon_inode:bpf-map":
			idKey, n = "map_id", &f.Maps
		case "anon_inode:bpf-prog":
			idKey, n = "prog_id", &f.Progs
		case "anon_inode:bpf_link":
			idKey, n = "link_id", &f.Links
		default:
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		id, ok := fdinfoField(string(b), idKey)
		if !ok {
			id = "fd" + e.Name() // an older kernel without ids: one per descriptor
		}
		if seen[idKey+id] {
			continue
		}
		seen[idKey+id] = true
		*n++
		if idKey == "map_id" {
			f.MapMemlock += fdinfoMemlock(string(b))
		}
	}
	return f, nil
}

// fdinfoField is the value of key in an fdinfo file.
func fdinfoField(fdinfo, key string) (string, bool) {
	for _, line := range strings.Split(fdinfo, "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// fdinfoMemlock is the memlock line of a bpf map's fdinfo, in bytes (0 when
// there is none).
func fdinfoMemlock(fdinfo string) uint64 {
	v, _ := fdinfoField(fdinfo, "memlock")
	n, _ := strconv.ParseUint(v, 10, 64)
	return n
}

// rss is VmRSS from /proc/PID/status, in bytes.
func rss(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return parseKB(v)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}

// scaleResult is what the scale section measured.
type scaleResult struct {
	Load      scaleLoad
	Binaries  []string      // the binary files the targets run
	Attach    durationStats // start → golens' attached line, over the targets
	SinceExec durationStats // golens' own since_exec of the same lines
	AllIn     time.Duration // first start → last attached line
	// AttachTook is golens' own took= of each attach: the work of one,
	// without the wait for the ones before it.
	AttachTook durationStats
	Attached   int           // targets golens said it attached
	Idle       time.Duration // agent CPU over the idle window
	IdleWall   time.Duration // its length
	Steady     time.Duration // agent CPU over the steady window, until its spans arrived
	SteadyN    int           // spans of the steady window
	RSS, HWM   uint64        // agent VmRSS after the steady window, VmHWM at the end
	Before     bpfFDs        // the agent's eBPF objects before any target
	With       bpfFDs        // with every target attached
	After      bpfFDs        // once every target was released
	TargetsG   float64       // golens_targets once every target was released
	Released   int           // targets golens said it released
	Inspect    float64       // golens_discovery_binaries_read_total over the whole section
	Execs      float64       // golens_discovery_execs_total over the churn
	Churned    int           // short-lived processes that ran
	Sent       int           // steady requests answered 200, over steady window and churn
	Failed     int           // steady requests that failed
	Spans      int           // spans of those at the receiver
	Losses     string        // golens' loss counters at the end
	Took       map[string]time.Duration
}

// runScale measures golens watching s.Targets processes of a few binaries
// at once: see the package comment. It returns what it measured even on
// error.
func runScale(e env, bins []string, s scaleLoad) (res scaleResult, err error) {
	res = scaleResult{Load: s, Binaries: bins, Took: map[string]time.Duration{}}
	phase := func(name string, began time.Time) { res.Took[name] = time.Since(began).Round(100 * time.Millisecond) }
	recv, err := harness.NewReceiver()
	if err != nil {
		return res, fmt.Errorf("start OTLP receiver: %w", err)
	}
	defer recv.Close()
	args := []string{"--otlp-endpoint", recv.Addr(), "--otlp-insecure", "--sampling-strategies", e.Sampling}
	for _, b := range bins {
		args = append(args, "--exe", b)
	}
	agent, err := harness.StartAgent(e.AgentBin, nil, args...)
	if err != nil {
		return res, fmt.Errorf("start golens: %w", err)
	}
	agentStopped := false
	defer func() {
		if !agentStopped {
			agent.Stop(5 * time.Second)
		}
	}()
	if err := agent.WaitReady(30 * time.Second); err != nil {
		return res, err
	}
	apid := agent.Cmd.Process.Pid
	time.Sleep(idleSettle)
	if res.Before, err = countBPF(apid); err != nil {
		return res, err
	}
	disc0, err := discoverySeries(agent)
	if err != nil {
		return res, err
	}

	// Start the targets, round robin over the binaries, one at a time.
	t0 := time.Now()
	slog.Info("scale: starting targets", "n", s.Targets, "binaries", len(bins))
	apps := make([]*harness.App, 0, s.Targets)
	begun := make([]time.Time, 0, s.Targets)
	defer func() {
		for _, a := range apps {
			if a != nil {
				a.Stop()
			}
		}
	}()
	for i := 0; i < s.Targets; i++ {
		begun = append(begun, time.Now())
		a, err := harness.StartApp(bins[i%len(bins)], []string{"OTEL_SERVICE_NAME=" + scaleService})
		if err != nil {
			return res, fmt.Errorf("start target %d: %w", i+1, err)
		}
		apps = append(apps, a)
	}
	var attach []execRun
	for i, a := range apps {
		rec, err := waitLog(agent, a.PID(), firstSpanWait, attachedMsgs...)
		if err != nil {
			return res, fmt.Errorf("target %d: %w", i+1, err)
		}
		at, err := rec.Time()
		if err != nil {
			return res, err
		}
		r := execRun{Attached: max(at.Sub(begun[i]), time.Millisecond)}
		r.SinceExec, _ = rec.Duration("since_exec")
		// took: the attach itself, load and verify of its programs included
		// (stored in Released, which the scale section does not use).
		r.Released, _ = rec.Duration("took")
		attach = append(attach, r)
		res.AllIn = max(res.AllIn, at.Sub(begun[0]))
	}
	res.Attached = len(attach)
	res.Attach = statsOf(attach, func(r execRun) time.Duration { return r.Attached })
	res.SinceExec = statsOf(attach, func(r execRun) time.Duration { return r.SinceExec })
	res.AttachTook = statsOf(attach, func(r execRun) time.Duration { return r.Released })
	phase("start and attach", t0)
	if res.With, err = countBPF(apid); err != nil {
		return res, err
	}

	// Idle: every target attached, no request.
	t0 = time.Now()
	slog.Info("scale: idle window", "window", s.Window)
	time.Sleep(idleSettle)
	c0, err := cpuTime(apid)
	if err != nil {
		return res, err
	}
	w0 := time.Now()
	time.Sleep(s.Window)
	c1, err := cpuTime(apid)
	if err != nil {
		return res, err
	}
	res.Idle, res.IdleWall = c1-c0, time.Since(w0)
	phase("idle window", t0)

	// Steady load over every target.
	t0 = time.Now()
	slog.Info("scale: steady load", "rate", s.Rate, "window", s.Window)
	pids := map[int64]bool{}
	for _, a := range apps {
		pids[int64(a.PID())] = true
	}
	countSpans := func() int {
		n := 0
		for _, sp := range recv.Spans() {
			if pid, _ := sp.Resource["process.pid"].(int64); pids[pid] && sp.Attrs["url.path"] == scalePath {
				n++
			}
		}
		return n
	}
	gen := startSteady(apps, s.Rate)
	c0, err = cpuTime(apid)
	if err != nil {
		gen.stop()
		return res, err
	}
	time.Sleep(s.Window)
	sent, _ := gen.counts()
	// The window's spans: its CPU is read once they have arrived, while
	// the load goes on (its own spans are then counted too).
	for deadline := time.Now().Add(spanWait); time.Now().Before(deadline) && countSpans() < sent; {
		time.Sleep(spanPoll)
	}
	c1, err = cpuTime(apid)
	if err != nil {
		gen.stop()
		return res, err
	}
	res.Steady, res.SteadyN = c1-c0, countSpans()
	if res.RSS, err = rss(apid); err != nil {
		gen.stop()
		return res, err
	}
	phase("steady window", t0)

	// Churn while the steady load goes on.
	t0 = time.Now()
	slog.Info("scale: churn", "processes", s.Churn)
	execs0, _ := sumSeries(mustSeries(agent), "golens_discovery_execs_total")
	res.Churned, err = churn(bins, s.Churn)
	execs1, _ := sumSeries(mustSeries(agent), "golens_discovery_execs_total")
	res.Execs = execs1 - execs0
	res.Sent, res.Failed = gen.stop()
	if err != nil {
		return res, err
	}
	waitCount(countSpans, res.Sent)
	res.Spans = countSpans()
	if res.Losses, err = agentLosses(agent); err != nil {
		return res, err
	}
	phase("churn", t0)

	// Release: end every target, then wait for golens to give everything
	// back.
	t0 = time.Now()
	slog.Info("scale: release")
	for _, a := range apps {
		a.Cmd.Process.Kill()
	}
	for i, a := range apps {
		a.Cmd.Wait()
		apps[i] = nil
		if _, err := waitLog(agent, a.PID(), releaseWait, releasedMsgs...); err == nil {
			res.Released++
		}
	}
	for deadline := time.Now().Add(settleWait); ; {
		if res.After, err = countBPF(apid); err != nil {
			return res, err
		}
		text, err := agent.Metrics()
		if err != nil {
			return res, err
		}
		res.TargetsG, _ = metricValue(text, "golens_targets")
		if (res.After == res.Before && res.TargetsG == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(spanPoll)
	}
	disc1, err := discoverySeries(agent)
	if err != nil {
		return res, err
	}
	res.Inspect, _ = sumSeries(seriesDelta(disc0, disc1), "golens_discovery_binaries_read_total")
	if res.HWM, err = peakRSS(apid); err != nil {
		return res, err
	}
	phase("release", t0)
	agentStopped = true
	if code, _, err := agent.Stop(10 * time.Second); err != nil || code != 0 {
		return res, fmt.Errorf("golens exit: code %d, %v\n%s", code, err, agent.Log())
	}
	return res, nil
}

// mustSeries is discoverySeries, empty when the scrape failed.
func mustSeries(agent *harness.Agent) map[string]float64 {
	m, _ := discoverySeries(agent)
	return m
}

// waitCount waits until count() reaches n, or stops growing for spanQuiet,
// or spanWait passes.
func waitCount(count func() int, n int) {
	deadline := time.Now().Add(spanWait)
	last, lastMoved := -1, time.Now()
	for time.Now().Before(deadline) {
		c := count()
		if c >= n {
			return
		}
		if c != last {
			last, lastMoved = c, time.Now()
		} else if time.Since(lastMoved) > spanQuiet {
			return
		}
		time.Sleep(spanPoll)
	}
}

// steady is a paced load over many targets: one keep-alive connection to
// each, requests spread evenly.
type steady struct {
	sent, failed atomic.Int64
	done         chan struct{}
	wg           sync.WaitGroup
}

// steadyWorkers share the load: each serves a slice of the targets.
const steadyWorkers = 4

func startSteady(apps []*harness.App, rate int) *steady {
	g := &steady{done: make(chan struct{})}
	w := min(steadyWorkers, len(apps))
	interval := time.Duration(float64(time.Second) * float64(w) / float64(rate))
	for i := 0; i < w; i++ {
		var urls []string
		for j := i; j < len(apps); j += w {
			urls = append(urls, "http://"+apps[j].Addr+scalePath)
		}
		g.wg.Add(1)
		go g.run(urls, interval)
	}
	return g
}

func (g *steady) run(urls []string, interval time.Duration) {
	defer g.wg.Done()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		MaxIdleConns: len(urls), MaxIdleConnsPerHost: 1, DisableCompression: true,
	}}
	defer client.CloseIdleConnections()
	next := time.Now()
	for i := 0; ; i++ {
		select {
		case <-g.done:
			return
		default:
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		if _, err := get(client, urls[i%len(urls)]); err != nil {
			g.failed.Add(1)
			continue
		}
		g.sent.Add(1)
	}
}

func (g *steady) counts() (sent, failed int) { return int(g.sent.Load()), int(g.failed.Load()) }

// stop ends the load and returns how many requests were answered and how
// many failed.
func (g *steady) stop() (sent, failed int) {
	select {
	case <-g.done:
	default:
		close(g.done)
	}
	g.wg.Wait()
	return g.counts()
}

// churnWorkers run the short-lived processes side by side.
const churnWorkers = 4

// churn runs n short-lived processes of the selected binaries, each exec
// then exit (-h: the flag package prints the usage and exits), churnWorkers
// at a time, and returns how many ran.
func churn(bins []string, n int) (int, error) {
	var ran atomic.Int64
	var firstErr atomic.Value
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for w := 0; w < churnWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				cmd := exec.Command(bins[i%len(bins)], "-h")
				if err := cmd.Start(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				cmd.Wait() // -h exits with status 0 or 2: either is an exit
				ran.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return int(ran.Load()), fmt.Errorf("churn: %w", err)
	}
	return int(ran.Load()), nil
}

// checks judges the scale section.
func (r scaleResult) checks() []check {
	n := r.Load.Targets
	return []check{{
		Name:   fmt.Sprintf("agent RSS at %d targets (VmHWM)", n),
		Value:  fmt.Sprintf("%.1f MiB", float64(r.HWM)/(1<<20)),
		Target: "≤ 100 MiB",
		Pass:   r.HWM > 0 && r.HWM <= scaleRSSGoal,
	}, {
		Name:   "binary inspections (golens_discovery_binaries_read_total)",
		Value:  fmt.Sprintf("%.0f for %d binaries, %d processes", r.Inspect, len(r.Binaries), n+r.Churned),
		Target: fmt.Sprintf("= %d (one per file)", len(r.Binaries)),
		Pass:   r.Inspect == float64(len(r.Binaries)),
	}, {
		Name:   fmt.Sprintf("attached, of %d", n),
		Value:  fmt.Sprintf("%d, start → attached median %s, max %s", r.Attached, ms(r.Attach.Median), ms(r.Attach.Max)),
		Target: fmt.Sprintf("all %d", n),
		Pass:   r.Attached == n,
	}, {
		Name:   fmt.Sprintf("steady spans lost during %d churning processes", r.Churned),
		Value:  fmt.Sprintf("%d of %d (requests failed: %d)", r.Sent-r.Spans, r.Sent, r.Failed),
		Target: "0, no failed request",
		Pass:   r.Sent > 0 && r.Spans == r.Sent && r.Failed == 0 && r.Churned == r.Load.Churn,
	}, {
		Name:   fmt.Sprintf("release of all %d", n),
		Value:  fmt.Sprintf("%d released; left: %s; golens_targets %.0f", r.Released, r.After, r.TargetsG),
		Target: "as before: " + r.Before.String() + ", targets 0",
		Pass:   r.Released == n && r.After == r.Before && r.TargetsG == 0,
	}}
}

// writeScale writes the scale section.
func (r scaleResult) write(out io.Writer, err error) {
	s := r.Load
	fmt.Fprintf(out, "\n=== scale ===\n%d targets of %d binaries (test/apps/httpserver built %d ways) selected by --exe; %d req/s GET %s spread over them (keep-alive); %d short-lived processes of the same binaries (exec → exit, -h) while they serve\n",
		s.Targets, len(r.Binaries), len(r.Binaries), s.Rate, scalePath, s.Churn)
	if err != nil {
		fmt.Fprintf(out, "  stopped early: %v\n", firstLine(err))
	}
	fmt.Fprintf(out, "  start → attached (golens' attached line, from just before the exec; targets started one after another): median %s, max %s over %d (golens' since_exec: median %s, max %s); all %d attached %s after the first start\n",
		ms(r.Attach.Median), ms(r.Attach.Max), r.Attach.N, ms(r.SinceExec.Median), ms(r.SinceExec.Max), r.Attached, ms(r.AllIn))
	if r.AttachTook.N > 0 {
		fmt.Fprintf(out, "  one attach (golens' took=, programs loaded and verified per target): median %s, max %s; attaches are queued, so in a burst of starts each waits for those before it (the discovery goal, < 2 s, is for one start)\n",
			ms(r.AttachTook.Median), ms(r.AttachTook.Max))
	}
	if r.IdleWall > 0 {
		fmt.Fprintf(out, "  agent idle CPU, %d attached, no request: %s over %s = %.2f%% of a core\n",
			s.Targets, r.Idle.Round(time.Millisecond), r.IdleWall.Round(time.Second), 100*float64(r.Idle)/float64(r.IdleWall))
	}
	if r.SteadyN > 0 {
		fmt.Fprintf(out, "  agent CPU per span, steady load: %s (%s for %d spans, idle share included)\n",
			us(r.Steady/time.Duration(r.SteadyN)), r.Steady.Round(time.Millisecond), r.SteadyN)
	}
	fmt.Fprintf(out, "  agent RSS: %.1f MiB after the steady window, peak %.1f MiB\n", float64(r.RSS)/(1<<20), float64(r.HWM)/(1<<20))
	fmt.Fprintf(out, "  agent's eBPF objects: before any target %s; with all attached %s; after release %s\n", r.Before, r.With, r.After)
	if s.Targets > 0 && r.With.Maps > 0 {
		fmt.Fprintf(out, "  kernel map memory per target: %.1f KiB (memlock with all attached less before, / %d)\n",
			float64(r.With.MapMemlock-min(r.With.MapMemlock, r.Before.MapMemlock))/1024/float64(s.Targets), s.Targets)
	}
	fmt.Fprintf(out, "  churn: %d processes ran, golens saw %.0f execs; golens' losses at the end: %s\n", r.Churned, r.Execs, r.Losses)
	var names []string
	for _, k := range []string{"start and attach", "idle window", "steady window", "churn", "release"} {
		if d, ok := r.Took[k]; ok {
			names = append(names, fmt.Sprintf("%s %s", k, d))
		}
	}
	fmt.Fprintf(out, "  took: %s\n", strings.Join(names, ", "))
	writeChecks(out, r.checks())
}

// firstLine is err's message up to its first newline (the agent's log,
// which follows, goes to the bench's log instead).
func firstLine(err error) string {
	m, _, _ := strings.Cut(err.Error(), "\n")
	return m
}
