package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
)

// The tail section: the chained case (A → B) alone, plain, with golens,
// with golens --cpu-yield and with golens stopped while the requests are
// timed (the probes without the agent's CPU), in interleaved rounds, for
// the p99 golens adds. The spans go to a receiver in a process of its own
// (otlpsink), as a collector is: in the bench's process its decoding and
// GC delayed the client that times the requests. With -tail-agent-env,
// more modes run golens with that environment (GOMAXPROCS=1, GOGC=...),
// or, for an absolute path, that golens binary (built with a change to
// try), to tell what of the agent's own running makes the tail.

type tailResult struct {
	Baseline summary
	Agents   []summary
}

// runTail runs the tail section's modes rounds times each, interleaved.
func runTail(e env, app string, rounds int, agentEnvs []string) (tailResult, error) {
	modes := []mode{
		{Name: "chain-baseline", App: app, Chain: true},
		{Name: "chain-agent", App: app, Agent: true, Chain: true, OwnReceiver: true},
		{Name: "chain-agent --cpu-yield", App: app, Agent: true, Chain: true, OwnReceiver: true, AgentArgs: []string{"--cpu-yield"}},
		// The probes alone: golens stopped while the requests are timed,
		// so what it adds is the traps and its eBPF programs, and the
		// difference to chain-agent is its own running.
		{Name: "chain-agent paused", App: app, Agent: true, Chain: true, PauseAgent: true, OwnReceiver: true},
	}
	for _, ev := range agentEnvs {
		m := mode{Name: "chain-agent " + ev, App: app, Agent: true, Chain: true, OwnReceiver: true}
		if strings.HasPrefix(ev, "/") { // another golens binary
			m.AgentBin = ev
		} else {
			m.AgentEnv = strings.Fields(ev)
		}
		modes = append(modes, m)
	}
	results := make([][]round, len(modes))
	for i := 0; i < rounds; i++ {
		for j, m := range modes {
			r, err := runRound(e, m)
			if err != nil {
				return tailResult{}, fmt.Errorf("%s, round %d: %w", m.Name, i+1, err)
			}
			slog.Info("tail round", "mode", m.Name, "n", i+1, "p50", r.P50, "p99", r.P99)
			results[j] = append(results[j], r)
		}
	}
	res := tailResult{Baseline: summarize(modes[0], results[0])}
	for j := 1; j < len(modes); j++ {
		res.Agents = append(res.Agents, summarize(modes[j], results[j]))
	}
	return res, nil
}

func (t tailResult) write(out io.Writer) {
	fmt.Fprintf(out, "\ntail: chained A → B, %d rounds interleaved, medians over rounds; spans to a receiver in its own process\n", len(t.Baseline.Rounds))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "mode\tp50 µs\tp99 µs\tp99 ÷ baseline\tagent CPU µs/req\tp99 by round µs\t\n")
	for _, s := range append([]summary{t.Baseline}, t.Agents...) {
		var by []string
		for _, r := range s.Rounds {
			by = append(by, usNum(r.P99))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%s\t\n", s.Mode.Name, usNum(s.P50), usNum(s.P99),
			float64(s.P99)/float64(t.Baseline.P99), usNum(s.AgentCPU), strings.Join(by, " "))
	}
	tw.Flush()
}
