// Command bench is `make bench`: in one invocation it measures what one
// uprobe hit costs on this machine, then serves the same HTTP routes three
// ways — plain (baseline), with golens attached (agent), and instrumented by
// hand with otelhttp — in interleaved rounds, and reports latency, throughput
// and CPU per request for each, with the targets golens must meet; it exits
// non-zero when one is missed or a span is lost.
//
// In the same rounds it measures the chained case: service A answers each
// request by calling service B (another process of the same server), plain
// (chain-baseline) and with one golens watching both (chain-agent), and
// reports what golens adds per chained request and per hop.
//
// Last, it runs golens in discovery mode (--exe selecting the bench's
// httpserver by its path) and measures its CPU over an idle window, with no
// extra processes and with -idle-procs idle non-Go ones, and how long a
// newly started httpserver takes to be attached and to reach the receiver
// as a span, -discovery-runs times.
//
// Its scale section starts -scale-targets watched processes of three
// binary files (httpserver built three ways) under one golens selecting them
// with --exe, serves them a steady load, runs -scale-churn short-lived
// processes of the same binaries meanwhile, and ends them all: attach
// times, agent CPU idle and per span, RSS, eBPF objects and map memory, one
// inspection per binary file, 0 steady spans lost, nothing left after the
// release (scale.go).
//
// Its ceiling section raises the span rate on one target until the first
// loss, naming where it began, then stops the agent and the collector for
// growing stalls to show how long the ring buffer and the export queue
// carry the load (ceiling.go).
//
// Its inject section runs the chained case three ways in interleaved
// rounds — plain, golens, golens --inject-context — and reports what exact
// pairing and the wire's programs cost: latency, target CPU and probe hits
// per request against the plain run, the sk_msg program's run time per
// request, and fails unless every request A sent B was injected (inject.go).
//
// Its progs section breaks golens' eBPF time down by program, for server
// requests with 1, 10 and 30 headers (with and without a traceparent) and
// chained requests (progcost.go).
//
// Its tail section runs the chained case alone, plain and with golens (and
// golens with each -tail-agent-env), for the p99 golens adds (tail.go).
//
// -only runs some sections: rounds (hit cost, single and chained), progs,
// tail, inject, discovery, scale, ceiling.
//
// It attaches eBPF programs, so it must run as root:
//
//	sudo go run ./test/bench [-only SECTIONS] [-requests N] [-chain-requests N] [-rounds N] [-warmup N]
//		[-discovery-window D] [-idle-procs N] [-discovery-runs N]
//		[-scale-targets N] [-scale-churn N] [-scale-rate N] [-scale-window D]
//		[-ceiling-rates N,N] [-ceiling-step D] [-ceiling-conns N] [-ceiling-stalls D,D] [-ceiling-stall-rate N] [-out FILE]
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/golens/golens/test/harness"
)

// config is what the flags set.
type config struct {
	Requests, Warmup, Rounds int
	ChainRequests            int
	HitCalls, HitRuns        int
	Discovery                discoveryLoad
	Scale                    scaleLoad
	Ceiling                  ceilingLoad
	Progs                    progLoad
	TailAgentEnvs            []string
	ProgCompare              string          // another golens binary for the progs section
	Only                     map[string]bool // sections to run
	Out                      string
}

// sections are the parts of the bench, in the order they run.
var sections = []string{"rounds", "progs", "tail", "inject", "discovery", "scale", "ceiling"}

// parseOnly reads -only: "all", or sections separated by commas.
func parseOnly(s string) (map[string]bool, error) {
	m := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "all":
			for _, n := range sections {
				m[n] = true
			}
		case slices.Contains(sections, f):
			m[f] = true
		default:
			return nil, fmt.Errorf("-only %q: sections are all, %s", f, strings.Join(sections, ", "))
		}
	}
	return m, nil
}

func main() {
	var cfg config
	flag.IntVar(&cfg.Requests, "requests", 5000, "measured requests per round and mode")
	flag.IntVar(&cfg.ChainRequests, "chain-requests", 5000, "measured chained requests (A → B) per round and chain mode")
	flag.IntVar(&cfg.Warmup, "warmup", 500, "warm-up requests before each round's measurement")
	flag.IntVar(&cfg.Rounds, "rounds", 7, "rounds per mode (at least 3), interleaved across modes")
	flag.IntVar(&cfg.HitCalls, "calls", 200000, "calls of the probed function per hit-cost run")
	flag.IntVar(&cfg.HitRuns, "hit-runs", 3, "hit-cost runs with and without the probe")
	flag.DurationVar(&cfg.Discovery.Window, "discovery-window", 65*time.Second, "each idle window of the discovery section (65 s holds two of the 30 s rescans of /proc)")
	flag.IntVar(&cfg.Discovery.Idle, "idle-procs", 500, "idle non-Go processes (sleep) on the machine in the second idle window")
	flag.IntVar(&cfg.Discovery.Runs, "discovery-runs", 10, "starts of the target, each a fresh process, for exec → first span")
	flag.IntVar(&cfg.Scale.Targets, "scale-targets", 100, "watched processes of the scale section")
	flag.IntVar(&cfg.Scale.Churn, "scale-churn", 1000, "short-lived processes (exec → exit) started while the scale section's targets serve")
	flag.IntVar(&cfg.Scale.Rate, "scale-rate", 500, "steady requests per second over all the scale section's targets")
	flag.DurationVar(&cfg.Scale.Window, "scale-window", 10*time.Second, "the scale section's idle window and steady window, each")
	rates := flag.String("ceiling-rates", "1000,2000,5000,10000,20000,40000", "offered span rates of the ceiling section, increasing")
	flag.DurationVar(&cfg.Ceiling.Step, "ceiling-step", 5*time.Second, "length of each ceiling step")
	flag.IntVar(&cfg.Ceiling.Workers, "ceiling-conns", 8, "keep-alive connections of the ceiling load")
	stalls := flag.String("ceiling-stalls", "250ms,500ms,1s,2s,4s", "stalls of the agent and of the collector tried, each at -ceiling-stall-rate, increasing")
	flag.IntVar(&cfg.Ceiling.StallRate, "ceiling-stall-rate", 5000, "span rate of the stall trials (at most the highest rate sustained)")
	flag.IntVar(&cfg.Progs.Requests, "prog-requests", 2000, "requests per case and repetition of the progs section")
	flag.IntVar(&cfg.Progs.Reps, "prog-reps", 3, "repetitions of the progs section's cases, interleaved")
	flag.StringVar(&cfg.ProgCompare, "prog-compare", "", "another golens binary (e.g. built from an earlier commit) whose programs the progs section measures alongside, interleaved")
	tailEnvs := flag.String("tail-agent-env", "", "extra golens modes of the tail section, separated by semicolons: an environment (\"GOMAXPROCS=1;GOGC=400\") or an absolute path of another golens binary")
	only := flag.String("only", "all", "sections to run, separated by commas: all, "+strings.Join(sections, ", "))
	flag.StringVar(&cfg.Out, "out", "", "also write the report to this file")
	flag.Parse()
	var err error
	for _, ev := range strings.Split(*tailEnvs, ";") {
		if ev = strings.TrimSpace(ev); ev != "" {
			cfg.TailAgentEnvs = append(cfg.TailAgentEnvs, ev)
		}
	}
	if cfg.Only, err = parseOnly(*only); err == nil {
		cfg.Ceiling.Rates, err = parseRates(*rates)
	}
	if err == nil {
		cfg.Ceiling.Stalls, err = parseStalls(*stalls)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(64)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))

	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	if cfg.Rounds < 3 || cfg.Requests < 100 || cfg.ChainRequests < 100 || cfg.Warmup < 0 || cfg.HitCalls < 1000 || cfg.HitRuns < 1 {
		return fmt.Errorf("need -rounds ≥ 3, -requests ≥ 100, -chain-requests ≥ 100, -warmup ≥ 0, -calls ≥ 1000, -hit-runs ≥ 1")
	}
	if d := cfg.Discovery; d.Window < time.Second || d.Idle < 1 || d.Runs < 1 {
		return fmt.Errorf("need -discovery-window ≥ 1s, -idle-procs ≥ 1, -discovery-runs ≥ 1")
	}
	if s := cfg.Scale; s.Targets < 1 || s.Churn < 0 || s.Rate < 1 || s.Window < time.Second {
		return fmt.Errorf("need -scale-targets ≥ 1, -scale-churn ≥ 0, -scale-rate ≥ 1, -scale-window ≥ 1s")
	}
	if c := cfg.Ceiling; c.Step < time.Second || c.Workers < 1 || c.StallRate < 1 {
		return fmt.Errorf("need -ceiling-step ≥ 1s, -ceiling-conns ≥ 1, -ceiling-stall-rate ≥ 1")
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root: it attaches eBPF uprobes (try: sudo go run ./test/bench)")
	}
	if why := harness.EBPFUnavailable(); why != "" {
		return fmt.Errorf("eBPF uprobes cannot run here: %s", why)
	}
	began, loadBefore := time.Now(), loadavg()

	dir, err := os.MkdirTemp("", "golens-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	slog.Info("building", "dir", dir, "what", "golens, hitloop, httpserver, httpserver-otel, otlpsink")
	agentBin, err := harness.BuildAgent(dir)
	if err != nil {
		return err
	}
	bins := map[string]string{}
	for _, app := range []string{"hitloop", "httpserver", "httpserver-otel", "otlpsink"} {
		if bins[app], err = harness.BuildApp(app, harness.Variant{}, dir); err != nil {
			return err
		}
	}
	sampling := filepath.Join(dir, "sample-all.json")
	if err := os.WriteFile(sampling, []byte(sampleAll), 0o644); err != nil {
		return err
	}
	e := env{
		AgentBin:  agentBin,
		Sink:      bins["otlpsink"],
		Sampling:  sampling,
		Load:      load{Warmup: cfg.Warmup, Requests: cfg.Requests, Path: "/hello"},
		ChainLoad: load{Warmup: cfg.Warmup, Requests: cfg.ChainRequests, Path: "/hello"},
	}
	rep := report{
		GoVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		Kernel:    kernel(),
		CPU:       cpuModel(),
		CPUs:      runtime.NumCPU(),
		Load:      e.Load,
		ChainLoad: e.ChainLoad,
		Rounds:    cfg.Rounds,
		Sections:  cfg.Only,
		Took:      map[string]time.Duration{},
	}
	took := func(name string, since time.Time) { rep.Took[name] = time.Since(since).Round(time.Second) }

	if cfg.Only["rounds"] {
		t0 := time.Now()
		if err := runRounds(cfg, e, bins, &rep); err != nil {
			return err
		}
		took("rounds", t0)
	}
	if cfg.Only["progs"] {
		t0 := time.Now()
		agents := []progAgent{{Name: "this golens", Bin: agentBin}}
		if cfg.ProgCompare != "" {
			agents = append(agents, progAgent{Name: cfg.ProgCompare, Bin: cfg.ProgCompare})
		}
		if rep.Progs, err = runProgs(e, bins["httpserver"], cfg.Progs, agents); err != nil {
			return fmt.Errorf("progs: %w", err)
		}
		took("progs", t0)
	}
	if cfg.Only["tail"] {
		t0 := time.Now()
		if rep.Tail, err = runTail(e, bins["httpserver"], cfg.Rounds, cfg.TailAgentEnvs); err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		took("tail", t0)
	}
	if cfg.Only["inject"] {
		t0 := time.Now()
		if rep.Inject, err = runInject(cfg, e, bins["httpserver"]); err != nil {
			return fmt.Errorf("inject: %w", err)
		}
		took("inject", t0)
	}
	// The sections after the rounds write what they measured even when they
	// stop early; their error is returned after the report.
	if cfg.Only["discovery"] {
		t0 := time.Now()
		rep.Discovery, rep.DiscoveryErr = runDiscovery(e, bins["httpserver"], cfg.Discovery)
		if rep.DiscoveryErr != nil {
			slog.Error("discovery section stopped early", "err", rep.DiscoveryErr)
		}
		took("discovery", t0)
	}
	if cfg.Only["scale"] {
		t0 := time.Now()
		// A few binaries, many replicas: the same server built three ways,
		// each a binary file of its own.
		scaleBins := []string{bins["httpserver"]}
		for _, v := range []harness.Variant{{Stripped: true}, {PIE: true}} {
			b, err := harness.BuildApp("httpserver", v, dir)
			if err != nil {
				return err
			}
			scaleBins = append(scaleBins, b)
		}
		rep.Scale, rep.ScaleErr = runScale(e, scaleBins, cfg.Scale)
		if rep.ScaleErr != nil {
			slog.Error("scale section stopped early", "err", rep.ScaleErr)
		}
		took("scale", t0)
	}
	if cfg.Only["ceiling"] {
		t0 := time.Now()
		rep.Ceiling, rep.CeilingErr = runCeiling(e, bins["httpserver"], cfg.Ceiling)
		if rep.CeilingErr != nil {
			slog.Error("ceiling section stopped early", "err", rep.CeilingErr)
		}
		took("ceiling", t0)
	}
	rep.Loadavg = [2]string{loadBefore, loadavg()}

	var buf bytes.Buffer
	rep.write(&buf)
	fmt.Fprintf(&buf, "\ntook %s\n", time.Since(began).Round(time.Second))
	os.Stdout.Write(buf.Bytes())
	if cfg.Out != "" {
		if err := os.WriteFile(cfg.Out, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	for _, f := range []struct {
		name string
		err  error
	}{{"discovery", rep.DiscoveryErr}, {"scale", rep.ScaleErr}, {"ceiling", rep.CeilingErr}} {
		if f.err != nil {
			return fmt.Errorf("%s: %w", f.name, f.err)
		}
	}
	if missed := rep.missed(); len(missed) > 0 {
		return fmt.Errorf("%d targets missed:\n  %s", len(missed), strings.Join(missed, "\n  "))
	}
	return nil
}

// runRounds calibrates the hit cost, then runs the interleaved rounds of
// every mode into rep.
func runRounds(cfg config, e env, bins map[string]string, rep *report) error {
	slog.Info("calibrating uprobe hit cost", "calls", cfg.HitCalls, "runs", cfg.HitRuns)
	hit, err := calibrate(bins["hitloop"], cfg.HitCalls, cfg.HitRuns)
	if err != nil {
		return fmt.Errorf("hit cost: %w", err)
	}
	slog.Info("hit cost", "per_hit", hit.PerHit())

	modes := []mode{
		{Name: "baseline", App: bins["httpserver"]},
		{Name: "agent", App: bins["httpserver"], Agent: true},
		{Name: "otelhttp", App: bins["httpserver-otel"], OTel: true},
		{Name: "chain-baseline", App: bins["httpserver"], Chain: true},
		{Name: "chain-agent", App: bins["httpserver"], Agent: true, Chain: true},
	}
	results := make([][]round, len(modes))
	for i := 0; i < cfg.Rounds; i++ {
		for j, m := range modes {
			slog.Info("round", "n", fmt.Sprintf("%d/%d", i+1, cfg.Rounds), "mode", m.Name)
			r, err := runRound(e, m)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", m.Name, i+1, err)
			}
			slog.Info("round done", "mode", m.Name, "p50", r.P50, "p99", r.P99,
				"req_per_s", int(r.Throughput), "target_cpu_per_req", r.TargetCPU)
			if (m.Agent || m.OTel) && r.Spans != r.SpansWanted {
				slog.Warn("SPAN COUNT MISMATCH", "mode", m.Name, "round", i+1, "received", r.Spans, "wanted", r.SpansWanted, "golens", r.AgentLosses)
			}
			if m.Agent && m.Chain && r.Linked != r.SpansWanted/chainCalls {
				slog.Warn("CHAINED TRACES INCOMPLETE", "mode", m.Name, "round", i+1, "linked", r.Linked, "requests", r.SpansWanted/chainCalls)
			}
			results[j] = append(results[j], r)
		}
	}
	rep.Hit = hit
	rep.Baseline = summarize(modes[0], results[0])
	rep.Agent = summarize(modes[1], results[1])
	rep.OTel = summarize(modes[2], results[2])
	rep.ChainBaseline = summarize(modes[3], results[3])
	rep.ChainAgent = summarize(modes[4], results[4])
	return nil
}

// kernel is the running kernel's release.
func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// loadavg is the 1, 5 and 15 minute load averages: other work on the
// machine during the run shows in every latency.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
