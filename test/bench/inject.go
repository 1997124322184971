package main

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// injectResult is the inject section: the chained case A → B plain, with
// golens, and with golens --inject-context, in interleaved rounds.
type injectResult struct {
	Load                    load
	Baseline, Agent, Inject summary
}

// runInject runs the inject section's rounds: each round runs the three
// modes one after another, so that whatever else loads the machine falls on
// all of them alike.
func runInject(cfg config, e env, app string) (injectResult, error) {
	modes := []mode{
		{Name: "inject-baseline", App: app, Chain: true},
		{Name: "inject-agent", App: app, Agent: true, Chain: true},
		{Name: "inject-on", App: app, Agent: true, Chain: true, Inject: true},
	}
	res := injectResult{Load: e.ChainLoad}
	results := make([][]round, len(modes))
	for i := 0; i < cfg.Rounds; i++ {
		for j, m := range modes {
			slog.Info("round", "n", fmt.Sprintf("%d/%d", i+1, cfg.Rounds), "mode", m.Name)
			r, err := runRound(e, m)
			if err != nil {
				return res, fmt.Errorf("%s, round %d: %w", m.Name, i+1, err)
			}
			slog.Info("round done", "mode", m.Name, "p50", r.P50, "p99", r.P99,
				"target_cpu_per_req", r.TargetCPU, "injected", r.Injected, "sent", r.Sent, "skipped", r.Skipped)
			results[j] = append(results[j], r)
		}
	}
	res.Baseline = summarize(modes[0], results[0])
	res.Agent = summarize(modes[1], results[1])
	res.Inject = summarize(modes[2], results[2])
	return res, nil
}

// wireCost is what the --inject-context programs ran per request, from the
// kernel's run statistics over a round's warm-up: medians over rounds.
type wireCost struct {
	SkMsgRuns, SockOpsRuns float64       // per request
	SkMsgPerRun            time.Duration // mean run time
	SkMsgPerReq            time.Duration // run time per request
	UprobeRuns             float64       // every other program's runs per request
}

func wireCostOf(s summary, warmup int) wireCost {
	var skRuns, soRuns, perRun, perReq, up []float64
	n := float64(warmup)
	for _, r := range s.Rounds {
		if r.Prog.Runs == 0 || n <= 0 {
			continue
		}
		skRuns = append(skRuns, float64(r.Prog.SkMsg.Runs)/n)
		soRuns = append(soRuns, float64(r.Prog.SockOps.Runs)/n)
		perRun = append(perRun, float64(r.Prog.SkMsg.PerRun()))
		perReq = append(perReq, float64(r.Prog.SkMsg.Time)/n)
		up = append(up, float64(r.Prog.Runs-r.Prog.SkMsg.Runs-r.Prog.SockOps.Runs)/n)
	}
	if len(skRuns) == 0 {
		return wireCost{}
	}
	return wireCost{
		SkMsgRuns: median(skRuns), SockOpsRuns: median(soRuns),
		SkMsgPerRun: time.Duration(median(perRun)), SkMsgPerReq: time.Duration(median(perReq)),
		UprobeRuns: median(up),
	}
}

// checks: every request A sent B was injected, and nothing was skipped.
func (r injectResult) checks() []check {
	var cs []check
	for i, rd := range r.Inject.Rounds {
		var skips []string
		for _, k := range slices.Sorted(maps.Keys(rd.Skipped)) {
			skips = append(skips, fmt.Sprintf("%s %.0f", k, rd.Skipped[k]))
		}
		v := fmt.Sprintf("%.0f/%d", rd.Injected, rd.Sent)
		if len(skips) > 0 {
			v += ", skipped " + strings.Join(skips, ", ")
		}
		cs = append(cs, check{
			Name:   fmt.Sprintf("inject-on round %d: injected/sent", i+1),
			Value:  v,
			Target: "all, none skipped",
			Pass:   rd.Injected == float64(rd.Sent) && len(skips) == 0,
		})
	}
	if len(r.Inject.Rounds) == 0 {
		cs = append(cs, check{Name: "inject-on rounds", Value: "none", Target: "≥ 1"})
	}
	return cs
}

// ratio is a/b as "×1.23", or "-" without b.
func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("×%.2f", float64(a)/float64(b))
}

func (r injectResult) write(out io.Writer) {
	b, a, in := r.Baseline, r.Agent, r.Inject
	fmt.Fprintf(out, "\n=== inject (--inject-context), chained A → B ===\n")
	fmt.Fprintf(out, "load: GET A/chain?to=http://B%s, 1 client, keep-alive, closed loop; %d requests per round after %d warm-up; the three modes interleaved in each round; medians over %d rounds\n",
		r.Load.Path, r.Load.Requests, r.Load.Warmup, len(b.Rounds))
	fmt.Fprintf(out, "inject-agent: golens --pid A --pid B; inject-on: the same with --inject-context (A's call to B gets a traceparent from the sk_msg program)\n\n")

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mode\tp50 µs\tp99 µs\ttarget CPU µs/req A+B\tA\tB\thits/req\tclient runs/req\tagent CPU µs/req\tinjected/sent\tone trace/sent\t\n")
	for _, s := range []summary{b, a, in} {
		hits, client, acpu, injected, linked := "-", "-", "-", "-", "-"
		if s.Mode.Agent {
			hits = fmt.Sprintf("%.3f", s.HitsPerReq)
			client = fmt.Sprintf("%.3f", s.ProgSplit.Client)
			acpu = usNum(s.AgentCPU)
			linked = fmt.Sprintf("%d/%d", s.Linked, s.SpansWanted/chainCalls)
		}
		if s.Mode.Inject {
			var n float64
			sent := 0
			for _, rd := range s.Rounds {
				n += rd.Injected
				sent += rd.Sent
			}
			injected = fmt.Sprintf("%.0f/%d", n, sent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			s.Mode.Name, usNum(s.P50), usNum(s.P99), usNum(s.TargetCPU), usNum(s.CallerCPU), usNum(s.CalleeCPU),
			hits, client, acpu, injected, linked)
	}
	tw.Flush()
	fmt.Fprintf(out, "hits/req: golens_probe_hits_total; client runs/req: the client uprobes' kernel run count (warm-up). CPU ±%s per request per round and process.\n\n",
		us(clockTick/time.Duration(max(r.Load.Requests, 1))))

	fmt.Fprintf(out, "per round (p50 µs | target CPU µs/req A+B): the spread is the machine's noise\n")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, s := range []summary{b, a, in} {
		var p50, cpu []string
		for _, rd := range s.Rounds {
			p50 = append(p50, usNum(rd.P50))
			cpu = append(cpu, usNum(rd.TargetCPU))
		}
		fmt.Fprintf(tw, "  %s\t%s\t| %s\n", s.Mode.Name, strings.Join(p50, " "), strings.Join(cpu, " "))
	}
	tw.Flush()
	fmt.Fprintln(out)

	fmt.Fprintf(out, "against the uninstrumented run (inject-baseline)\n")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  \tp50\tp99\ttarget CPU A+B\n")
	for _, s := range []summary{a, in} {
		fmt.Fprintf(tw, "  %s\t%s %s\t%s %s\t%s %s\n", s.Mode.Name,
			ratio(s.P50, b.P50), signedUs(s.P50-b.P50), ratio(s.P99, b.P99), signedUs(s.P99-b.P99),
			ratio(s.TargetCPU, b.TargetCPU), signedUs(s.TargetCPU-b.TargetCPU))
	}
	fmt.Fprintf(tw, "  inject-on vs inject-agent\t%s\t%s\t%s\n", signedUs(in.P50-a.P50), signedUs(in.P99-a.P99), signedUs(in.TargetCPU-a.TargetCPU))
	tw.Flush()
	if w := wireCostOf(in, r.Load.Warmup); w.SkMsgRuns > 0 {
		fmt.Fprintf(out, "  wire programs per request (kernel run statistics, warm-up only): sk_msg %.3f runs × %s = %s, sock_ops %.3f runs (it runs for every TCP connect in its cgroup, not only the targets'); uprobes %.3f runs\n",
			w.SkMsgRuns, us(w.SkMsgPerRun), us(w.SkMsgPerReq), w.SockOpsRuns, w.UprobeRuns)
	} else {
		fmt.Fprintf(out, "  wire programs: no kernel run statistics (sk_msg did not run during the warm-ups, or statistics were unavailable)\n")
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "inject targets\n")
	writeChecks(out, r.checks())
}
