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
// It attaches eBPF programs, so it must run as root:
//
//	sudo go run ./test/bench [-requests N] [-chain-requests N] [-rounds N] [-warmup N]
//		[-discovery-window D] [-idle-procs N] [-discovery-runs N] [-out FILE]
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
	Out                      string
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
	flag.StringVar(&cfg.Out, "out", "", "also write the report to this file")
	flag.Parse()
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

	slog.Info("building", "dir", dir, "what", "golens, hitloop, httpserver, httpserver-otel")
	agentBin, err := harness.BuildAgent(dir)
	if err != nil {
		return err
	}
	bins := map[string]string{}
	for _, app := range []string{"hitloop", "httpserver", "httpserver-otel"} {
		if bins[app], err = harness.BuildApp(app, harness.Variant{}, dir); err != nil {
			return err
		}
	}

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
	sampling := filepath.Join(dir, "sample-all.json")
	if err := os.WriteFile(sampling, []byte(sampleAll), 0o644); err != nil {
		return err
	}
	e := env{
		AgentBin:  agentBin,
		Sampling:  sampling,
		Load:      load{Warmup: cfg.Warmup, Requests: cfg.Requests, Path: "/hello"},
		ChainLoad: load{Warmup: cfg.Warmup, Requests: cfg.ChainRequests, Path: "/hello"},
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

	// Last, so that a failure here does not lose the rounds: the report is
	// written with what was measured, then the error is returned.
	disc, discErr := runDiscovery(e, bins["httpserver"], cfg.Discovery)
	if discErr != nil {
		slog.Error("discovery section stopped early", "err", discErr)
	}

	rep := report{
		GoVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		Kernel:    kernel(),
		CPU:       cpuModel(),
		CPUs:      runtime.NumCPU(),
		Loadavg:   [2]string{loadBefore, loadavg()},
		Load:      e.Load,
		ChainLoad: e.ChainLoad,
		Rounds:    cfg.Rounds,
		Hit:       hit,
		Baseline:  summarize(modes[0], results[0]),
		Agent:     summarize(modes[1], results[1]),
		OTel:      summarize(modes[2], results[2]),

		ChainBaseline: summarize(modes[3], results[3]),
		ChainAgent:    summarize(modes[4], results[4]),

		Discovery:    disc,
		DiscoveryErr: discErr,
	}
	var buf bytes.Buffer
	rep.write(&buf)
	fmt.Fprintf(&buf, "\ntook %s\n", time.Since(began).Round(time.Second))
	os.Stdout.Write(buf.Bytes())
	if cfg.Out != "" {
		if err := os.WriteFile(cfg.Out, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	if discErr != nil {
		return fmt.Errorf("discovery: %w", discErr)
	}
	if missed := rep.missed(); len(missed) > 0 {
		return fmt.Errorf("%d targets missed:\n  %s", len(missed), strings.Join(missed, "\n  "))
	}
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
