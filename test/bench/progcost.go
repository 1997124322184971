package main

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/golens/golens/test/harness"
)

// The progs section: what each of golens' eBPF programs costs per run, by
// the kernel's run statistics, for server requests carrying 1, 10 and 30
// headers (with and without a traceparent: the header walk stops early only
// when it finds one) and for chained requests (the client programs).

// progCase is one kind of request the progs section sends.
type progCase struct {
	Name        string
	Headers     int  // request headers in all, traceparent included
	Traceparent bool // one of them is a valid traceparent
	Chain       bool // A calls B: the client programs run
}

var progCases = []progCase{
	{Name: "1 header (traceparent)", Headers: 1, Traceparent: true},
	{Name: "1 header (no traceparent)", Headers: 1},
	{Name: "10 headers (traceparent)", Headers: 10, Traceparent: true},
	{Name: "10 headers (no traceparent)", Headers: 10},
	{Name: "30 headers (traceparent)", Headers: 30, Traceparent: true},
	{Name: "30 headers (no traceparent)", Headers: 30},
	{Name: "chained A → B", Headers: 1, Chain: true},
}

// progLoad is the progs section's traffic.
type progLoad struct {
	Requests int // per case and repetition
	Reps     int // repetitions, interleaved over the cases
}

// progRow is one program's cost in one case: medians over the repetitions.
type progRow struct {
	Prog    string
	PerReq  float64       // runs per request
	PerRun  time.Duration // run time per run
	TotalNs float64       // run time per request, ns
}

// progCaseResult is one case's rows and totals.
type progCaseResult struct {
	Case     progCase
	Rows     []progRow
	PerReq   time.Duration // all programs, per request
	PerHit   time.Duration // all programs, per run
	HitsReq  float64
	Requests int
}

type progResult struct {
	Agent string // which golens
	Load  progLoad
	Cases []progCaseResult
}

// caseRequest builds the request of case c to target.
func caseRequest(c progCase, target string) (*http.Request, error) {
	req, err := http.NewRequest("GET", target, nil)
	if err != nil {
		return nil, err
	}
	// Explicitly empty: Go's client then sends no User-Agent, so the
	// header count is exactly c.Headers.
	req.Header["User-Agent"] = []string{""}
	n := c.Headers
	if c.Traceparent {
		req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		n--
	}
	for i := 0; i < n; i++ {
		req.Header.Set("X-Bench-Header-"+strconv.Itoa(i), "value-"+strconv.Itoa(i))
	}
	return req, nil
}

// progAgent is a golens binary the progs section measures.
type progAgent struct {
	Name, Bin string
}

// runProgs measures each case Reps times with each agent (this tree's
// golens, then -prog-compare's), cases and agents interleaved, so that a
// change to the programs is compared within one run.
func runProgs(e env, app string, ld progLoad, agents []progAgent) ([]progResult, error) {
	samples := make([][][]progTime, len(agents))
	for rep := 0; rep < ld.Reps; rep++ {
		for a, ag := range agents {
			slog.Info("progs", "agent", ag.Name, "rep", rep+1)
			got, err := progSession(e, app, ld, ag.Bin)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ag.Name, err)
			}
			if samples[a] == nil {
				samples[a] = make([][]progTime, len(progCases))
			}
			for i := range got {
				samples[a][i] = append(samples[a][i], got[i])
			}
		}
	}
	var out []progResult
	for a, ag := range agents {
		out = append(out, summarizeProgs(ag.Name, ld, samples[a]))
	}
	return out, nil
}

// progSession starts B and A (one httpserver binary) under one golens and
// measures every case once.
func progSession(e env, app string, ld progLoad, agentBin string) ([]progTime, error) {
	recv, err := harness.NewReceiver()
	if err != nil {
		return nil, fmt.Errorf("start OTLP receiver: %w", err)
	}
	defer recv.Close()
	env := []string{"GODEBUG=httpmuxgo121=0"}
	callee, err := harness.StartApp(app, append(env, "OTEL_SERVICE_NAME="+serviceB))
	if err != nil {
		return nil, err
	}
	defer callee.Stop()
	caller, err := harness.StartApp(app, append(env, "OTEL_SERVICE_NAME="+serviceA))
	if err != nil {
		return nil, err
	}
	defer caller.Stop()
	agent, err := harness.StartAgent(agentBin, nil,
		"--pid", strconv.Itoa(caller.PID()), "--pid", strconv.Itoa(callee.PID()),
		"--otlp-endpoint", recv.Addr(), "--otlp-insecure", "--sampling-strategies", e.Sampling)
	if err != nil {
		return nil, err
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(30 * time.Second); err != nil {
		return nil, fmt.Errorf("golens did not attach: %w", err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}}
	defer client.CloseIdleConnections()

	var out []progTime
	for _, c := range progCases {
		target := "http://" + caller.Addr + "/hello"
		if c.Chain {
			target = "http://" + caller.Addr + "/chain?to=" + url.QueryEscape("http://"+callee.Addr+"/hello")
		}
		send := func(n int) error {
			for j := 0; j < n; j++ {
				req, err := caseRequest(c, target)
				if err != nil {
					return err
				}
				resp, err := client.Do(req)
				if err != nil {
					return fmt.Errorf("%s: %w", c.Name, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			return nil
		}
		if err := send(100); err != nil { // warm-up
			return nil, err
		}
		st, err := startProgStats(agent.Cmd.Process.Pid)
		if err != nil {
			return nil, err
		}
		if err := send(ld.Requests); err != nil {
			st.close()
			return nil, err
		}
		t, err := st.stop()
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// summarizeProgs makes each case's rows: medians over the repetitions.
func summarizeProgs(name string, ld progLoad, samples [][]progTime) progResult {
	res := progResult{Agent: name, Load: ld}
	for i, c := range progCases {
		cr := progCaseResult{Case: c, Requests: ld.Requests}
		names := map[string]bool{}
		for _, t := range samples[i] {
			for n, runs := range t.ByProg {
				if runs > 0 {
					names[n] = true
				}
			}
		}
		for _, n := range slices.Sorted(maps.Keys(names)) {
			var perReq, perRun, total []float64
			for _, t := range samples[i] {
				runs := t.ByProg[n]
				perReq = append(perReq, float64(runs)/float64(ld.Requests))
				total = append(total, float64(t.TimeByProg[n])/float64(ld.Requests))
				if runs > 0 {
					perRun = append(perRun, float64(t.TimeByProg[n])/float64(runs))
				}
			}
			cr.Rows = append(cr.Rows, progRow{Prog: n, PerReq: median(perReq), PerRun: time.Duration(median(perRun)), TotalNs: median(total)})
		}
		var perReq, perHit, hits []float64
		for _, t := range samples[i] {
			perReq = append(perReq, float64(t.Time)/float64(ld.Requests))
			hits = append(hits, float64(t.Runs)/float64(ld.Requests))
			if t.Runs > 0 {
				perHit = append(perHit, float64(t.Time)/float64(t.Runs))
			}
		}
		cr.PerReq, cr.PerHit, cr.HitsReq = time.Duration(median(perReq)), time.Duration(median(perHit)), median(hits)
		res.Cases = append(res.Cases, cr)
	}
	return res
}

func (p progResult) write(out io.Writer) {
	fmt.Fprintf(out, "\neBPF programs of %s (kernel run statistics; %d requests per case, median of %d repetitions)\n", p.Agent, p.Load.Requests, p.Load.Reps)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "case\tprogram\truns/req\tns/run\tns/req\t\n")
	for _, c := range p.Cases {
		for _, r := range c.Rows {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%d\t%.0f\t\n", c.Case.Name, r.Prog, r.PerReq, r.PerRun.Nanoseconds(), r.TotalNs)
		}
		fmt.Fprintf(tw, "%s\tall\t%.2f\t%d\t%d\t\n", c.Case.Name, c.HitsReq, c.PerHit.Nanoseconds(), c.PerReq.Nanoseconds())
	}
	tw.Flush()
}
