package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/golens/golens/test/harness"
)

// ceilingLoad is what the ceiling section does: offered span rates, in
// increasing order, each for Step.
type ceilingLoad struct {
	Rates   []int
	Step    time.Duration
	Workers int // keep-alive connections, each paced at rate/Workers
	// Stalls are how long the agent (SIGSTOP) and then the collector (it
	// answers late) stop in each stall trial, at StallRate.
	Stalls    []time.Duration
	StallRate int
}

// ceilingStep is one offered rate, or one stall trial.
type ceilingStep struct {
	Stall    time.Duration // how long the agent or the collector stopped; 0 for a rate step
	Offered  int
	Achieved float64 // requests answered per second
	Sent     int
	Failed   int
	Spans    int     // at the receiver
	RingLost float64 // golens_events_lost_total over the step
	Dropped  map[string]float64
	AgentCPU time.Duration // per span
	QueueMax float64       // largest golens_export_queue_length seen
}

// Lost is how many answered requests have no span.
func (s ceilingStep) Lost() int { return s.Sent - s.Spans }

// DroppedTotal is every span golens dropped over the step, whatever the
// reason.
func (s ceilingStep) DroppedTotal() float64 {
	t := 0.0
	for _, v := range s.Dropped {
		t += v
	}
	return t
}

// Saturated: the machine could not send the offered rate (by a tenth).
func (s ceilingStep) Saturated() bool { return s.Achieved < 0.9*float64(s.Offered) }

// ceilingResult is the ceiling section.
type ceilingResult struct {
	Load  ceilingLoad
	Steps []ceilingStep
	// AgentStalls and CollectorStalls are the stall trials, at
	// Load.StallRate, until the first that lost a span.
	AgentStalls, CollectorStalls []ceilingStep
}

// lossy: a span was lost, or golens counted a loss.
func (s ceilingStep) lossy() bool { return s.Lost() > 0 || s.RingLost > 0 || s.DroppedTotal() > 0 }

// Best is the highest achieved rate without loss, and the first step that
// lost spans (nil when none did).
func (r ceilingResult) Best() (float64, *ceilingStep) {
	best := 0.0
	for i, s := range r.Steps {
		if s.lossy() {
			return best, &r.Steps[i]
		}
		best = max(best, s.Achieved)
	}
	return best, nil
}

// parseRates reads "2000,5000" as rates.
func parseRates(s string) ([]int, error) {
	var rates []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("rate %q: want a positive integer", f)
		}
		if len(rates) > 0 && n <= rates[len(rates)-1] {
			return nil, fmt.Errorf("rates must increase: %d after %d", n, rates[len(rates)-1])
		}
		rates = append(rates, n)
	}
	return rates, nil
}

// runCeiling serves one httpserver under one golens (every trace kept) at
// each offered rate in turn, each step on a path of its own so that its
// spans are counted apart, and stops after the first step that loses a
// span or cannot send what it offers.
func runCeiling(e env, app string, c ceilingLoad) (ceilingResult, error) {
	res := ceilingResult{Load: c}
	recv, err := harness.NewReceiver()
	if err != nil {
		return res, fmt.Errorf("start OTLP receiver: %w", err)
	}
	defer recv.Close()
	a, err := harness.StartApp(app, []string{"GODEBUG=httpmuxgo121=0"})
	if err != nil {
		return res, err
	}
	defer a.Stop()
	agent, err := harness.StartAgent(e.AgentBin, nil, "--pid", strconv.Itoa(a.PID()), "--service-name", "bench-ceiling",
		"--otlp-endpoint", recv.Addr(), "--otlp-insecure", "--sampling-strategies", e.Sampling)
	if err != nil {
		return res, fmt.Errorf("start golens: %w", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			agent.Stop(5 * time.Second)
		}
	}()
	if err := agent.WaitReady(30 * time.Second); err != nil {
		return res, err
	}
	apid := agent.Cmd.Process.Pid
	for _, rate := range c.Rates {
		slog.Info("ceiling: step", "offered_per_s", rate, "for", c.Step)
		st, err := ceilingTrial(agent, recv, a.Addr, fmt.Sprintf("/echo/ceiling-%d", rate), rate, c.Workers, c.Step, 0, nil, false)
		if err != nil {
			return res, err
		}
		res.Steps = append(res.Steps, st)
		if _, lossy := res.Best(); lossy != nil || st.Saturated() {
			break
		}
	}
	// Stalls: how long the ring buffer (agent stopped) and the export queue
	// (collector answering late) carry the load without loss.
	rate := c.StallRate
	if best, _ := res.Best(); best > 0 && float64(rate) > best {
		rate = int(best)
	}
	for _, kind := range []string{"agent", "collector"} {
		for _, d := range c.Stalls {
			stall := func(on bool) {
				switch {
				case kind == "agent" && on:
					syscall.Kill(apid, syscall.SIGSTOP)
				case kind == "agent":
					syscall.Kill(apid, syscall.SIGCONT)
				case on:
					// An export started in the window is answered d
					// late; the queue holds what comes meanwhile.
					recv.SetDelay(d)
				default:
					recv.SetDelay(0)
				}
			}
			slog.Info("ceiling: stall", "what", kind, "for", d, "rate_per_s", rate)
			st, err := ceilingTrial(agent, recv, a.Addr, fmt.Sprintf("/echo/stall-%s-%d", kind, d.Milliseconds()), rate, c.Workers, d+2*time.Second, d, stall, kind == "agent")
			recv.SetDelay(0)
			if err != nil {
				return res, err
			}
			if kind == "agent" {
				res.AgentStalls = append(res.AgentStalls, st)
			} else {
				res.CollectorStalls = append(res.CollectorStalls, st)
			}
			if st.lossy() {
				break
			}
		}
	}
	stopped = true
	if code, _, err := agent.Stop(10 * time.Second); err != nil || code != 0 {
		return res, fmt.Errorf("golens exit: code %d, %v\n%s", code, err, agent.Log())
	}
	return res, nil
}

// ceilingTrial sends GET path at rate for d and measures it, as one step of
// the ceiling. With stall, the stall begins a second in: stall(true), then
// stall(false) after stallFor; stopsAgent: the agent cannot be scraped
// meanwhile.
func ceilingTrial(agent *harness.Agent, recv *harness.Receiver, addr, path string, rate, workers int, d, stallFor time.Duration, stall func(bool), stopsAgent bool) (ceilingStep, error) {
	apid := agent.Cmd.Process.Pid
	count := func() int {
		n := 0
		for _, s := range recv.Spans() {
			if s.Attrs["url.path"] == path {
				n++
			}
		}
		return n
	}
	before, err := agent.Metrics()
	if err != nil {
		return ceilingStep{}, err
	}
	cpu0, err := cpuTime(apid)
	if err != nil {
		return ceilingStep{}, err
	}
	st := ceilingStep{Offered: rate, Stall: stallFor}
	var queueMax atomic.Int64
	var agentStopped atomic.Bool // no scrape while it cannot answer
	watch := make(chan struct{})
	var watched sync.WaitGroup
	watched.Add(2)
	go func() {
		defer watched.Done()
		for {
			select {
			case <-watch:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if agentStopped.Load() {
				continue
			}
			if text, err := agent.Metrics(); err == nil {
				if q, err := metricValue(text, "golens_export_queue_length"); err == nil && int64(q) > queueMax.Load() {
					queueMax.Store(int64(q))
				}
			}
		}
	}()
	go func() {
		defer watched.Done()
		if stall == nil {
			return
		}
		select {
		case <-watch:
			return
		case <-time.After(time.Second):
		}
		agentStopped.Store(stopsAgent)
		stall(true)
		select {
		case <-watch:
		case <-time.After(stallFor):
		}
		stall(false)
		agentStopped.Store(false)
	}()
	start := time.Now()
	st.Sent, st.Failed = paced("http://"+addr+path, rate, workers, d)
	st.Achieved = float64(st.Sent) / time.Since(start).Seconds()
	if stall != nil {
		// The collector's delay holds every export until it ends.
		time.Sleep(stallFor)
	}
	waitCount(count, st.Sent)
	close(watch)
	watched.Wait()
	st.QueueMax = float64(queueMax.Load())
	st.Spans = count()
	cpu1, err := cpuTime(apid)
	if err != nil {
		return st, err
	}
	if st.Spans > 0 {
		st.AgentCPU = (cpu1 - cpu0) / time.Duration(st.Spans)
	}
	after, err := agent.Metrics()
	if err != nil {
		return st, err
	}
	l0, _ := metricValue(before, "golens_events_lost_total")
	l1, _ := metricValue(after, "golens_events_lost_total")
	st.RingLost = l1 - l0
	st.Dropped = seriesDelta(seriesWithPrefix(before, "golens_spans_dropped_total"), seriesWithPrefix(after, "golens_spans_dropped_total"))
	slog.Info("ceiling: done", "path", path, "offered_per_s", rate, "achieved_per_s", int(st.Achieved), "sent", st.Sent,
		"spans", st.Spans, "ring_lost", st.RingLost, "dropped", st.DroppedTotal(), "queue_max", st.QueueMax)
	return st, nil
}

// paced sends GET url at rate per second over workers keep-alive
// connections for d, and returns how many were answered and how many
// failed. A worker that falls behind sends without pause: the achieved rate
// then says what the machine could do.
func paced(url string, rate, workers int, d time.Duration) (sent, failed int) {
	var ok, bad atomic.Int64
	interval := time.Duration(float64(time.Second) * float64(workers) / float64(rate))
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
			defer client.CloseIdleConnections()
			next := time.Now()
			for time.Now().Before(end) {
				if w := time.Until(next); w > 0 {
					time.Sleep(w)
				}
				next = next.Add(interval)
				if _, err := get(client, url); err != nil {
					bad.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(ok.Load()), int(bad.Load())
}

// write writes the ceiling section.
func (r ceilingResult) write(out io.Writer, err error) {
	fmt.Fprintf(out, "\n=== ceiling ===\none httpserver, every trace kept, GET over %d keep-alive connections paced at the offered rate for %s per step; stops at the first loss or when the machine cannot send the rate\n",
		r.Load.Workers, r.Load.Step)
	if err != nil {
		fmt.Fprintf(out, "  stopped early: %v\n", firstLine(err))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  offered/s\tachieved/s\tsent\tspans\tlost\tring lost\tqueue dropped\tqueue max\tagent CPU µs/span\t\n")
	for _, s := range r.Steps {
		fmt.Fprintf(tw, "  %d\t%.0f\t%d\t%d\t%d\t%.0f\t%s\t%.0f\t%s\t\n", s.Offered, s.Achieved, s.Sent, s.Spans, s.Lost(), s.RingLost, droppedSummary(s.Dropped), s.QueueMax, usNum(s.AgentCPU))
	}
	tw.Flush()
	writeStalls(out, "agent stopped (SIGSTOP): the ring buffer holds the events", r.AgentStalls)
	writeStalls(out, "collector answering late: the export queue holds the spans", r.CollectorStalls)
	best, lossy := r.Best()
	switch {
	case lossy != nil:
		where := "at the receiver only (golens counted no loss)"
		if lossy.RingLost > 0 {
			where = "in the ring buffer (golens_events_lost_total)"
		} else if lossy.DroppedTotal() > 0 {
			where = "in the export queue (golens_spans_dropped_total: " + droppedSummary(lossy.Dropped) + ")"
		}
		fmt.Fprintf(out, "  highest rate without loss: %.0f spans/s; loss starts at %.0f spans/s offered %d, %s\n", best, lossy.Achieved, lossy.Offered, where)
	case len(r.Steps) > 0 && r.Steps[len(r.Steps)-1].Saturated():
		fmt.Fprintf(out, "  highest rate without loss: %.0f spans/s, and no loss: the machine could not send more (load generator, target and agent share its CPUs)\n", best)
	default:
		fmt.Fprintf(out, "  no loss up to %.0f spans/s, the highest rate offered\n", best)
	}
}

// droppedSummary writes the reasons that dropped spans, "0" when none did.
func droppedSummary(d map[string]float64) string {
	var parts []string
	for k, v := range d {
		if v > 0 {
			_, reason, _ := strings.Cut(k, "{")
			parts = append(parts, fmt.Sprintf("%.0f %s", v, strings.TrimSuffix(reason, "}")))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, " ")
}

// writeStalls writes the stall trials of one kind and the longest stall
// without loss.
func writeStalls(out io.Writer, what string, trials []ceilingStep) {
	if len(trials) == 0 {
		return
	}
	fmt.Fprintf(out, "  stalls at %d spans/s, %s:\n", trials[0].Offered, what)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "    stall\tsent\tspans\tlost\tring lost\tqueue dropped\tqueue max\t\n")
	longest := time.Duration(0)
	lossy := false
	for _, s := range trials {
		fmt.Fprintf(tw, "    %s\t%d\t%d\t%d\t%.0f\t%s\t%.0f\t\n", ms(s.Stall), s.Sent, s.Spans, s.Lost(), s.RingLost, droppedSummary(s.Dropped), s.QueueMax)
		if s.lossy() {
			lossy = true
		} else if !lossy {
			longest = s.Stall
		}
	}
	tw.Flush()
	if lossy {
		fmt.Fprintf(out, "    longest stall without loss: %s\n", ms(longest))
	} else {
		fmt.Fprintf(out, "    no loss up to the longest stall tried, %s\n", ms(longest))
	}
}

// parseStalls reads "250ms,1s" as increasing durations; "" is none.
func parseStalls(s string) ([]time.Duration, error) {
	var out []time.Duration
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d <= 0 || d > 8*time.Second {
			return nil, fmt.Errorf("stall %q: want a duration in (0, 8s] (the export timeout is 10 s)", f)
		}
		if len(out) > 0 && d <= out[len(out)-1] {
			return nil, fmt.Errorf("stalls must increase: %s after %s", d, out[len(out)-1])
		}
		out = append(out, d)
	}
	return out, nil
}
