package main

import (
	"strings"
	"testing"
	"time"
)

func TestInjectCounts(t *testing.T) {
	text := `# HELP golens_inject_total What --inject-context did on the wire
golens_inject_total{result="injected",reason="http1"} 1200
golens_inject_total{result="injected",reason="http2"} 100
golens_inject_total{result="skipped",reason="http1_mismatch"} 2
golens_inject_total{result="skipped",reason="no_state"} 0
golens_inject_totalx{result="injected",reason="http1"} 5
`
	inj, skip := injectCounts(seriesWithPrefix(text, "golens_inject_total{"))
	if inj != 1300 || len(skip) != 1 || skip["http1_mismatch"] != 2 {
		t.Fatalf("injected %v, skipped %v", inj, skip)
	}
	if inj, skip := injectCounts(nil); inj != 0 || len(skip) != 0 {
		t.Fatalf("no series: injected %v, skipped %v", inj, skip)
	}
}

func TestInjectChecks(t *testing.T) {
	on := mode{Name: "inject-on", Agent: true, Chain: true, Inject: true}
	r := injectResult{Inject: summarize(on, []round{{Sent: 1300, Injected: 1300}, {Sent: 1300, Injected: 1300}})}
	cs := r.checks()
	if len(cs) != 2 || !cs[0].Pass || !cs[1].Pass || cs[0].Value != "1300/1300" {
		t.Fatalf("all injected: %+v", cs)
	}
	// One request short, or one skipped even with the count right: a miss.
	r.Inject.Rounds[0].Injected = 1299
	r.Inject.Rounds[1].Skipped = map[string]float64{"http1_unsent": 1}
	cs = r.checks()
	if cs[0].Pass || cs[1].Pass || cs[1].Value != "1300/1300, skipped http1_unsent 1" {
		t.Fatalf("short and skipped: %+v", cs)
	}
	// No inject round at all is not a pass.
	if cs := (injectResult{}).checks(); len(cs) != 1 || cs[0].Pass {
		t.Fatalf("no rounds: %+v", cs)
	}
	rep := report{Sections: map[string]bool{"inject": true}, Inject: r}
	if got := rep.missed(); len(got) != 2 || !strings.Contains(got[0], "1299/1300") {
		t.Fatalf("missed: %q", got)
	}
}

func TestWireCost(t *testing.T) {
	rd := func(sk uint64, skTime time.Duration) round {
		return round{Prog: progTime{Runs: 7*500 + sk + 50, SkMsg: progRun{Runs: sk, Time: skTime}, SockOps: progRun{Runs: 50}}}
	}
	s := summary{Rounds: []round{rd(500, 400*time.Microsecond), rd(500, 500*time.Microsecond), rd(500, 600*time.Microsecond), {}}}
	w := wireCostOf(s, 500)
	if w.SkMsgRuns != 1 || w.SockOpsRuns != 0.1 || w.UprobeRuns != 7 || w.SkMsgPerRun != time.Microsecond || w.SkMsgPerReq != time.Microsecond {
		t.Fatalf("got %+v", w)
	}
	if w := wireCostOf(summary{Rounds: []round{{}}}, 500); w != (wireCost{}) {
		t.Fatalf("no statistics: %+v", w)
	}
}

func TestWriteInject(t *testing.T) {
	base := round{P50: 100 * time.Microsecond, P99: 200 * time.Microsecond, TargetCPU: 100 * time.Microsecond, Sent: 110}
	agent := round{P50: 110 * time.Microsecond, P99: 300 * time.Microsecond, TargetCPU: 120 * time.Microsecond, HitsPerReq: 7, Sent: 110, Spans: 330, SpansWanted: 330, Linked: 110}
	on := agent
	on.P50, on.TargetCPU, on.Injected = 150*time.Microsecond, 160*time.Microsecond, 110
	on.Prog = progTime{Runs: 80, SkMsg: progRun{Runs: 10, Time: 8 * time.Microsecond}}
	r := report{
		Sections: map[string]bool{"inject": true},
		Inject: injectResult{
			Load:     load{Requests: 100, Warmup: 10, Path: "/hello"},
			Baseline: summarize(mode{Name: "inject-baseline", Chain: true}, []round{base}),
			Agent:    summarize(mode{Name: "inject-agent", Agent: true, Chain: true}, []round{agent}),
			Inject:   summarize(mode{Name: "inject-on", Agent: true, Chain: true, Inject: true}, []round{on}),
		},
	}
	var b strings.Builder
	r.write(&b)
	out := b.String()
	order := []string{"=== inject (--inject-context), chained A → B ===", "inject-on", "110/110",
		"per round", "150.0  | 160.0",
		"inject-agent               ×1.10 +10.0 µs", "inject-on                  ×1.50 +50.0 µs", "×1.60 +60.0 µs",
		"inject-on vs inject-agent  +40.0 µs", "sk_msg 1.000 runs × 0.8 µs = 0.8 µs", "uprobes 7.000 runs",
		"inject targets", "inject-on round 1: injected/sent  110/110", "PASS"}
	at := 0
	for _, s := range order {
		i := strings.Index(out[at:], s)
		if i < 0 {
			t.Fatalf("%q missing after offset %d in:\n%s", s, at, out)
		}
		at += i + len(s)
	}
	if strings.Contains(out, "=== chained") || strings.Contains(out, "WARNING") {
		t.Fatalf("other sections or warnings written:\n%s", out)
	}
}
