package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/golens/golens/discovery"
)

// summary is one mode over all its rounds: medians, except the agent's peak
// RSS, which is the largest seen, and span counts, which are totals.
type summary struct {
	Mode        mode
	Rounds      []round
	P50, P99    time.Duration
	Throughput  float64
	TargetCPU   time.Duration
	HitsPerReq  float64
	AgentCPU    time.Duration
	AgentPeak   uint64
	Spans       int
	SpansWanted int
	ProgPerHit  time.Duration // median over rounds with statistics; 0 if none
	ProgSplit   hitSplit      // median over rounds with statistics; zero if none
	CallerCPU   time.Duration // A's part of TargetCPU; chain only
	CalleeCPU   time.Duration // B's part of TargetCPU; chain only
	Linked      int           // chained traces; chain agent only
}

func summarize(m mode, rs []round) summary {
	s := summary{Mode: m, Rounds: rs}
	pick := func(f func(round) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	s.P50 = time.Duration(pick(func(r round) float64 { return float64(r.P50) }))
	s.P99 = time.Duration(pick(func(r round) float64 { return float64(r.P99) }))
	s.Throughput = pick(func(r round) float64 { return r.Throughput })
	s.TargetCPU = time.Duration(pick(func(r round) float64 { return float64(r.TargetCPU) }))
	s.HitsPerReq = pick(func(r round) float64 { return r.HitsPerReq })
	s.AgentCPU = time.Duration(pick(func(r round) float64 { return float64(r.AgentCPU) }))
	s.CallerCPU = time.Duration(pick(func(r round) float64 { return float64(r.TargetCPU - r.CalleeCPU) }))
	s.CalleeCPU = time.Duration(pick(func(r round) float64 { return float64(r.CalleeCPU) }))
	var perHit, server, client, other []float64
	for _, r := range rs {
		if r.Prog.Runs > 0 {
			perHit = append(perHit, float64(r.Prog.Time)/float64(r.Prog.Runs))
		}
		if r.ProgSplit.Total() > 0 {
			server = append(server, r.ProgSplit.Server)
			client = append(client, r.ProgSplit.Client)
			other = append(other, r.ProgSplit.Other)
		}
		s.AgentPeak = max(s.AgentPeak, r.AgentPeak)
		s.Spans += r.Spans
		s.SpansWanted += r.SpansWanted
		s.Linked += r.Linked
	}
	if len(perHit) > 0 {
		s.ProgPerHit = time.Duration(median(perHit))
	}
	if len(server) > 0 {
		s.ProgSplit = hitSplit{Server: median(server), Client: median(client), Other: median(other)}
	}
	return s
}

// report is everything the benchmark prints.
type report struct {
	GoVersion, Kernel, CPU string
	CPUs                   int
	Loadavg                [2]string // at start and at end
	Load                   load
	Rounds                 int
	Hit                    hitCost
	Baseline, Agent, OTel  summary

	ChainLoad                 load
	ChainBaseline, ChainAgent summary

	Inject injectResult
	Progs  []progResult
	Tail   tailResult

	Discovery    discoveryResult
	DiscoveryErr error // what stopped the discovery section early, if anything

	Scale      scaleResult
	ScaleErr   error
	Ceiling    ceilingResult
	CeilingErr error

	Sections map[string]bool          // which ran (-only)
	Took     map[string]time.Duration // each section's wall time
}

// check is one target the benchmark judges.
type check struct {
	Name, Value, Target string
	Pass                bool
}

func (r report) checks() []check {
	hit := r.Hit.PerHit()
	budget := time.Duration(r.Agent.HitsPerReq * float64(hit))
	added := r.Agent.P50 - r.Baseline.P50
	ratio := float64(added) / float64(budget)
	agentCPU := r.Agent.TargetCPU - r.Baseline.TargetCPU
	otelCPU := r.OTel.TargetCPU - r.Baseline.TargetCPU
	total := r.Agent.TargetCPU + r.Agent.AgentCPU
	return []check{
		{
			// The server programs' own run count: the GC probes also
			// count in hits/req, a few per thousand requests, but they
			// are per pause, not per request.
			Name:   "server request hits (server programs' runs/req)",
			Value:  fmt.Sprintf("%.4f (all programs: %.4f)", perRequest(r.Agent.ProgSplit.Server, r.Agent.HitsPerReq), r.Agent.HitsPerReq),
			Target: "≤ 2",
			Pass:   perRequest(r.Agent.ProgSplit.Server, r.Agent.HitsPerReq) <= 2,
		},
		{
			Name:   "added latency / (hits × hit cost)",
			Value:  fmt.Sprintf("%.2f = %s / (%.3f × %s)", ratio, us(added), r.Agent.HitsPerReq, us(hit)),
			Target: "≤ 1.2",
			Pass:   budget > 0 && ratio <= 1.2,
		},
		{
			Name:   "added target CPU, agent vs otelhttp",
			Value:  fmt.Sprintf("%s vs %s", us(agentCPU), us(otelCPU)),
			Target: "agent ≤ ½ otelhttp",
			Pass:   otelCPU > 0 && agentCPU <= otelCPU/2,
		},
		{
			Name:   "target+agent CPU vs otelhttp target CPU",
			Value:  fmt.Sprintf("%s + %s = %s vs %s", us(r.Agent.TargetCPU), us(r.Agent.AgentCPU), us(total), us(r.OTel.TargetCPU)),
			Target: "<",
			Pass:   total < r.OTel.TargetCPU,
		},
	}
}

// serverHops is how many of a chained request's instrumented calls are
// served (A and B); each costs the 2 hits of the server probe.
const serverHops = 2

// chainClientHits is what a chained request's one client call costs in probe
// hits: everything golens counted per request less the server hops' share.
func (r report) chainClientHits() float64 {
	return r.ChainAgent.HitsPerReq - serverHops*2
}

// perRequest prefers the kernel's per-program count; without it (program
// statistics unavailable) it falls back to the total.
func perRequest(programs, total float64) float64 {
	if programs > 0 {
		return programs
	}
	return total
}

// chainChecks are the targets of the chained case.
func (r report) chainChecks() []check {
	client := perRequest(r.ChainAgent.ProgSplit.Client, r.chainClientHits())
	server := perRequest(r.ChainAgent.ProgSplit.Server, r.ChainAgent.HitsPerReq-client) / serverHops
	// A client call costs three: Transport.roundTrip's entry and RET, and
	// the connection's own round trip, the first point where the request's
	// TCP connection is known (exact pairing and injection, issue 13).
	return []check{{
		Name:   "client request hits (client programs' runs/req)",
		Value:  fmt.Sprintf("%.4f (all programs %.4f − 2 server hops)", client, r.ChainAgent.HitsPerReq),
		Target: "≤ 3",
		Pass:   client <= 3,
	}, {
		Name:   "hits per server hop (server programs' runs/req ÷ 2)",
		Value:  fmt.Sprintf("%.4f", server),
		Target: "≤ 2",
		Pass:   server <= 2,
	}}
}

// spanWarnings says where a mode's spans at the receiver differ from the
// requests sent, and where chained requests did not become one trace each.
func (r report) spanWarnings() []string {
	var w []string
	for _, s := range []summary{r.Agent, r.OTel, r.ChainAgent, r.Inject.Agent, r.Inject.Inject} {
		per := s.Mode.spansPerRequest()
		for i, rd := range s.Rounds {
			if rd.Spans != rd.SpansWanted {
				l := fmt.Sprintf("%s round %d: %d spans received for %d requests sent", s.Mode.Name, i+1, rd.Spans, rd.SpansWanted/per)
				if per > 1 {
					l += fmt.Sprintf(", want %d", rd.SpansWanted)
				}
				if rd.AgentLosses != "" {
					l += " (golens: " + rd.AgentLosses + ")"
				}
				w = append(w, l)
			}
			if s.Mode.Chain && rd.Linked != rd.SpansWanted/per {
				w = append(w, fmt.Sprintf("%s round %d: %d of %d chained requests exported as one trace A server → A client → B server",
					s.Mode.Name, i+1, rd.Linked, rd.SpansWanted/per))
			}
		}
	}
	return w
}

func (r report) write(out io.Writer) {
	fmt.Fprintf(out, "golens benchmark\n")
	fmt.Fprintf(out, "go %s, kernel %s, %d CPUs (%s)\n", r.GoVersion, r.Kernel, r.CPUs, r.CPU)
	fmt.Fprintf(out, "load average: %s at start, %s at end\n", r.Loadavg[0], r.Loadavg[1])
	var took []string
	for _, n := range sections {
		if d, ok := r.Took[n]; ok {
			took = append(took, fmt.Sprintf("%s %s", n, d))
		}
	}
	fmt.Fprintf(out, "sections run: %s\n", strings.Join(took, ", "))
	if r.Sections["rounds"] {
		r.writeRounds(out)
	}
	if r.Sections["progs"] {
		for _, p := range r.Progs {
			p.write(out)
		}
	}
	if r.Sections["tail"] {
		r.Tail.write(out)
	}
	if r.Sections["inject"] {
		r.Inject.write(out)
	}
	if r.Sections["discovery"] {
		r.writeDiscovery(out)
	}
	if r.Sections["scale"] {
		r.Scale.write(out, r.ScaleErr)
	}
	if r.Sections["ceiling"] {
		r.Ceiling.write(out, r.CeilingErr)
	}
	if w := r.spanWarnings(); len(w) > 0 {
		fmt.Fprintf(out, "\n!!! WARNING: span counts differ from requests sent !!!\n")
		for _, l := range w {
			fmt.Fprintf(out, "!!! %s\n", l)
		}
	}
}

// writeRounds writes the hit cost and the interleaved rounds, single
// service and chained.
func (r report) writeRounds(out io.Writer) {
	fmt.Fprintf(out, "load: GET %s, 1 client, keep-alive, closed loop; %d requests per round after %d warm-up; %d rounds interleaved; medians over rounds\n",
		r.Load.Path, r.Load.Requests, r.Load.Warmup, r.Rounds)
	fmt.Fprintf(out, "golens: --sampling-strategies %s (every trace kept)\n", sampleAll)
	fmt.Fprintf(out, "otelhttp: AlwaysSample, batch span processor (OTEL_BSP_SCHEDULE_DELAY=%s ms, as golens flushes), OTLP/gRPC to a receiver in this process, like golens\n\n", otelBatchDelay)

	fmt.Fprintf(out, "uprobe hit cost (test/apps/hitloop: %d calls of %s; thread CPU time, median of %d runs each)\n", r.Hit.Calls, hitSymbol, len(r.Hit.RunsWith))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  without probe\t%s ns/call\truns %s\twall %s ns/call\n", ns1(r.Hit.Without), joinNs(r.Hit.RunsWithout), ns1(r.Hit.WallWithout))
	fmt.Fprintf(tw, "  with empty probe\t%s ns/call\truns %s\twall %s ns/call\n", ns1(r.Hit.With), joinNs(r.Hit.RunsWith), ns1(r.Hit.WallWith))
	fmt.Fprintf(tw, "  one hit\t%s\tkernel counted %d program runs for %d calls\t\n", us(r.Hit.PerHit()), r.Hit.Verified, r.Hit.VerifyCalls)
	tw.Flush()
	fmt.Fprintln(out)

	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mode\tp50 µs\tp99 µs\treq/s\ttarget CPU µs/req\thits/req\tagent CPU µs/req\tagent peak RSS\tspans/sent\t\n")
	for _, s := range []summary{r.Baseline, r.Agent, r.OTel} {
		hits, acpu, rss, spans := "-", "-", "-", "-"
		if s.Mode.Agent {
			hits = fmt.Sprintf("%.3f", s.HitsPerReq)
			acpu = usNum(s.AgentCPU)
			rss = fmt.Sprintf("%.1f MiB", float64(s.AgentPeak)/(1<<20))
		}
		if s.Mode.Agent || s.Mode.OTel {
			spans = fmt.Sprintf("%d/%d", s.Spans, s.SpansWanted)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n",
			s.Mode.Name, usNum(s.P50), usNum(s.P99), s.Throughput, usNum(s.TargetCPU), hits, acpu, rss, spans)
	}
	tw.Flush()
	fmt.Fprintf(out, "CPU is read from /proc/PID/stat in 10 ms ticks: ±%s per request per round.\n\n", us(clockTick/time.Duration(r.Load.Requests)))

	fmt.Fprintf(out, "per round (p50 µs | target CPU µs/req)\n")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, s := range []summary{r.Baseline, r.Agent, r.OTel} {
		var p50, cpu []string
		for _, rd := range s.Rounds {
			p50 = append(p50, usNum(rd.P50))
			cpu = append(cpu, usNum(rd.TargetCPU))
		}
		fmt.Fprintf(tw, "  %s\t%s\t| %s\n", s.Mode.Name, strings.Join(p50, " "), strings.Join(cpu, " "))
	}
	tw.Flush()
	fmt.Fprintln(out)

	fmt.Fprintf(out, "added per request vs baseline (p50 latency | target CPU)\n")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, s := range []summary{r.Agent, r.OTel} {
		fmt.Fprintf(tw, "  %s\t%s\t| %s\n", s.Mode.Name, signedUs(s.P50-r.Baseline.P50), signedUs(s.TargetCPU-r.Baseline.TargetCPU))
	}
	tw.Flush()
	if p := r.Agent.ProgPerHit; p > 0 {
		fmt.Fprintf(out, "  a golens hit = trap %s (empty probe) + its eBPF program %s (kernel run statistics, warm-up only) = %s\n",
			us(r.Hit.PerHit()), us(p), us(r.Hit.PerHit()+p))
	}
	fmt.Fprintln(out)

	fmt.Fprintf(out, "targets\n")
	writeChecks(out, r.checks())

	r.writeChain(out)
}

// writeChain writes the chained section: A → B, per request and per hop.
func (r report) writeChain(out io.Writer) {
	b, a := r.ChainBaseline, r.ChainAgent
	fmt.Fprintf(out, "\n=== chained A → B ===\n")
	fmt.Fprintf(out, "load: GET A/chain?to=http://B%s (A serves it by calling B with the request's context), 1 client, keep-alive, closed loop; %d requests per round after %d warm-up; in the rounds above, interleaved; medians over rounds\n",
		r.ChainLoad.Path, r.ChainLoad.Requests, r.ChainLoad.Warmup)
	fmt.Fprintf(out, "A, B: test/apps/httpserver, two processes; golens: one agent, --pid A --pid B, same sampling\n")
	fmt.Fprintf(out, "per request %d instrumented calls (A server, A client, B server): %d spans, one trace, B under A's client span by the same-node linker\n\n",
		chainCalls, chainCalls)

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mode\tp50 µs\tp99 µs\treq/s\ttarget CPU µs/req A+B\tA\tB\thits/req\tagent CPU µs/req\tagent peak RSS\tspans/%d×sent\tone trace/sent\t\n", chainCalls)
	for _, s := range []summary{b, a} {
		hits, acpu, rss, spans, linked := "-", "-", "-", "-", "-"
		if s.Mode.Agent {
			hits = fmt.Sprintf("%.3f", s.HitsPerReq)
			acpu = usNum(s.AgentCPU)
			rss = fmt.Sprintf("%.1f MiB", float64(s.AgentPeak)/(1<<20))
			spans = fmt.Sprintf("%d/%d", s.Spans, s.SpansWanted)
			linked = fmt.Sprintf("%d/%d", s.Linked, s.SpansWanted/chainCalls)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			s.Mode.Name, usNum(s.P50), usNum(s.P99), s.Throughput, usNum(s.TargetCPU),
			usNum(s.CallerCPU), usNum(s.CalleeCPU), hits, acpu, rss, spans, linked)
	}
	tw.Flush()
	fmt.Fprintf(out, "A and B: medians of each; A+B: median of the sums. CPU ±%s per request per round and process.\n\n",
		us(clockTick/time.Duration(r.ChainLoad.Requests)))

	fmt.Fprintf(out, "per round (p50 µs | target CPU µs/req A+B)\n")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, s := range []summary{b, a} {
		var p50, cpu []string
		for _, rd := range s.Rounds {
			p50 = append(p50, usNum(rd.P50))
			cpu = append(cpu, usNum(rd.TargetCPU))
		}
		fmt.Fprintf(tw, "  %s\t%s\t| %s\n", s.Mode.Name, strings.Join(p50, " "), strings.Join(cpu, " "))
	}
	tw.Flush()
	fmt.Fprintln(out)

	hit := r.Hit.PerHit()
	added := a.P50 - b.P50
	addedCPU := a.TargetCPU - b.TargetCPU
	perHop := func(d time.Duration) time.Duration { return d / chainCalls }
	fmt.Fprintf(out, "added by golens (chain-agent vs chain-baseline)\n")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  \tper chained request\tper hop (÷ %d)\n", chainCalls)
	fmt.Fprintf(tw, "  p50 latency\t%s\t%s\n", signedUs(added), signedUs(perHop(added)))
	fmt.Fprintf(tw, "  target CPU, A+B\t%s\t%s\n", signedUs(addedCPU), signedUs(perHop(addedCPU)))
	fmt.Fprintf(tw, "  agent CPU\t%s\t%s\n", us(a.AgentCPU), us(perHop(a.AgentCPU)))
	fmt.Fprintf(tw, "  probe hits\t%.3f\t%.3f\n", a.HitsPerReq, a.HitsPerReq/chainCalls)
	tw.Flush()
	budget := time.Duration(a.HitsPerReq * float64(hit))
	ratio := math.NaN()
	if budget > 0 {
		ratio = float64(added) / float64(budget)
	}
	fmt.Fprintf(out, "  added latency / (hits × hit cost) = %s / (%.3f × %s) = %.2f\n", us(added), a.HitsPerReq, us(hit), ratio)
	if p := a.ProgSplit; p.Total() > 0 {
		fmt.Fprintf(out, "  eBPF program runs per request (kernel run statistics, warm-up only): server %.3f (A and B), client %.3f, other (runtime) %.3f\n",
			p.Server, p.Client, p.Other)
	}
	fmt.Fprintln(out)

	fmt.Fprintf(out, "chained targets\n")
	writeChecks(out, r.chainChecks())
}

// writeDiscovery writes the discovery section: what golens costs, idle,
// with and without many processes on the machine, and how soon a process
// that starts is traced.
func (r report) writeDiscovery(out io.Writer) {
	d := r.Discovery
	fmt.Fprintf(out, "\n=== discovery (--exe) ===\n")
	fmt.Fprintf(out, "golens --exe %s (only the bench's httpserver, by its path), same sampling, OTLP to the receiver\n", d.Glob)
	if len(d.Windows) > 0 {
		fmt.Fprintf(out, "idle: nothing selected runs; golens follows the kernel's exec and exit events and rescans /proc every %s. "+
			"Each window has a fresh agent, started after the idle processes; it begins %s after /readyz and lasts %s\n\n",
			discovery.DefaultRescan, idleSettle, d.Load.Window)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "idle processes\tin /proc\twindow\tagent CPU\tCPU ms/min\t%% of one core\trescans\t\n")
		for _, w := range d.Windows {
			rescans := "-"
			if n, ok := w.Rescans(); ok {
				rescans = fmt.Sprintf("%.0f", n)
			}
			fmt.Fprintf(tw, "%d\t%d\t%.1f s\t%s\t%s\t%.3f %%\t%s\t\n",
				w.Idle, w.Procs, w.Wall.Seconds(), ms(w.CPU), msNum(w.PerMinute()), w.Core(), rescans)
		}
		if len(d.Windows) == 2 {
			a, b := d.Windows[0], d.Windows[1]
			fmt.Fprintf(tw, "added by %d\t\t\t\t%+.0f\t%+.3f %%\t\t\n",
				b.Idle, float64(b.PerMinute()-a.PerMinute())/1e6, b.Core()-a.Core())
		}
		tw.Flush()
		fmt.Fprintf(out, "idle processes: coreutils sleep (not Go), one process group, killed after. CPU from /proc/PID/stat in 10 ms ticks: ±%s per window, ±%.1f ms/min.\n",
			ms(clockTick), float64(clockTick)*float64(time.Minute)/float64(d.Load.Window)/1e6)
		if d.Load.Window < 2*discovery.DefaultRescan {
			fmt.Fprintf(out, "the window is shorter than two rescan periods: the rescans' share of a minute may be off.\n")
		}
		for _, w := range d.Windows {
			fmt.Fprintf(out, "golens_discovery_* over the window with %d idle processes: %s\n", w.Idle, seriesSummary(w.Discovery))
		}
	}

	if len(d.Runs) > 0 {
		fmt.Fprintf(out, "\nexec → first span: test/apps/httpserver started %d times, a fresh process each, under the agent of the %d-process window; "+
			"GET /echo/run-N every %s from when it listens (new connection each) until the receiver has a span of that pid and path; "+
			"then killed, and the next start waits for golens to release it. Times from just before the exec; golens' log time stamps are to the ms.\n\n",
			len(d.Runs), d.Load.Idle, pollEvery)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "\tmedian ms\tmax ms\truns\t\n")
		for _, row := range []struct {
			name string
			f    func(execRun) time.Duration
		}{
			{"exec → listening", func(r execRun) time.Duration { return r.Listening }},
			{"exec → attached (golens' log line)", func(r execRun) time.Duration { return r.Attached }},
			{"golens' since_exec (from the kernel's exec event)", func(r execRun) time.Duration { return r.SinceExec }},
			{"exec → first instrumented request (its span's start)", func(r execRun) time.Duration { return r.FirstReq }},
			{"exec → first span at the receiver", func(r execRun) time.Duration { return r.FirstSpan }},
			{"kill → released (golens' log line)", func(r execRun) time.Duration { return r.Released }},
		} {
			s := statsOf(d.Runs, row.f)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t\n", row.name, msNum(s.Median), msNum(s.Max), s.N)
		}
		tw.Flush()
		var attached, span []string
		var requests []float64
		for _, run := range d.Runs {
			attached = append(attached, msNum(run.Attached))
			span = append(span, msNum(run.FirstSpan))
			requests = append(requests, float64(run.Requests))
		}
		fmt.Fprintf(out, "per start, exec → attached | first span (ms): %s | %s; requests sent until the span came: median %.0f\n",
			strings.Join(attached, " "), strings.Join(span, " "), median(requests))
	}
	if r.DiscoveryErr != nil {
		first, _, _ := strings.Cut(r.DiscoveryErr.Error(), "\n")
		fmt.Fprintf(out, "\n!!! discovery section stopped early: %s\n", first)
	}
	fmt.Fprintln(out)

	fmt.Fprintf(out, "discovery targets\n")
	writeChecks(out, d.checks())
}

// seriesSummary lists the series that moved, by name; "not exported" when
// there are none at all.
func seriesSummary(series map[string]float64) string {
	if series == nil {
		return "not exported by this golens"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(series)) {
		if v := series[k]; v != 0 {
			parts = append(parts, fmt.Sprintf("%s %+g", strings.TrimPrefix(k, "golens_discovery_"), v))
		}
	}
	if len(parts) == 0 {
		return "none moved"
	}
	return strings.Join(parts, ", ")
}

// writeChecks writes one line per check with its verdict.
func writeChecks(out io.Writer, cs []check) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, c := range cs {
		verdict := "MISS"
		if c.Pass {
			verdict = "PASS"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Name, c.Value, c.Target, verdict)
	}
	tw.Flush()
}

// median of v; v is not modified.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// quantile is the nearest-rank q-quantile of sorted.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func usNum(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e3) }
func us(d time.Duration) string    { return usNum(d) + " µs" }
func ns1(ns float64) string        { return fmt.Sprintf("%.1f", ns) }

func signedUs(d time.Duration) string { return fmt.Sprintf("%+.1f µs", float64(d)/1e3) }

func joinNs(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = ns1(x)
	}
	return strings.Join(s, " ")
}

// missed lists every target the run did not meet and every span the agent
// lost, each as one line: make bench fails on any of them.
func (r report) missed() []string {
	var out []string
	var all [][]check
	if r.Sections["rounds"] {
		all = append(all, r.checks(), r.chainChecks())
	}
	if r.Sections["inject"] {
		all = append(all, r.Inject.checks())
	}
	if r.Sections["discovery"] {
		all = append(all, r.Discovery.checks())
	}
	if r.Sections["scale"] {
		all = append(all, r.Scale.checks())
	}
	for _, cs := range all {
		for _, c := range cs {
			if !c.Pass {
				out = append(out, fmt.Sprintf("%s: %s, target %s", c.Name, c.Value, c.Target))
			}
		}
	}
	return append(out, r.spanWarnings()...)
}
