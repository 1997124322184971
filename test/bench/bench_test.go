package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

func TestParseStatTicks(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       uint64
		err        bool
	}{
		{"plain", "42 (httpserver) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 5 0", 10, false},
		{"comm with spaces and parens", "42 (a b) c) R 1 42 42 0 -1 0 0 0 0 0 120 80 0 0", 200, false},
		{"no comm", "42 httpserver S 1", 0, true},
		{"short", "42 (x) S 1 2 3", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatTicks(tc.stat)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if got != tc.want {
				t.Fatalf("got %d ticks, want %d", got, tc.want)
			}
		})
	}
}

func TestParseKB(t *testing.T) {
	got, err := parseKB("\t   20480 kB")
	if err != nil || got != 20480*1024 {
		t.Fatalf("got %d, %v", got, err)
	}
	if _, err := parseKB(" 12 MB"); err == nil {
		t.Fatal("MB accepted")
	}
}

func TestMetricValue(t *testing.T) {
	text := "# HELP golens_probe_hits_total x\n# TYPE golens_probe_hits_total counter\ngolens_probe_hits_total 1.2e+06\ngolens_probe_hits_total_other 3\n"
	got, err := metricValue(text, "golens_probe_hits_total")
	if err != nil || got != 1.2e6 {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := metricValue(text, "golens_targets"); err == nil {
		t.Fatal("missing metric found")
	}
}

func TestParseHitloop(t *testing.T) {
	wall, cpu, err := parseHitloop("ns/call 9900.500 cpu-ns/call 9612.250 calls 200000\n")
	if err != nil || wall != 9900.5 || cpu != 9612.25 {
		t.Fatalf("got %v, %v, %v", wall, cpu, err)
	}
	if _, _, err := parseHitloop("ns/call 3 calls 200000"); err == nil {
		t.Fatal("line without CPU time accepted")
	}
	if _, _, err := parseHitloop("panic: boom"); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestMedianQuantile(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median odd = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if q := quantile(d, 0.5); q != 50 {
		t.Errorf("p50 = %v", q)
	}
	if q := quantile(d, 0.99); q != 99 {
		t.Errorf("p99 = %v", q)
	}
	if q := quantile(d[:1], 0.99); q != 1 {
		t.Errorf("p99 of one = %v", q)
	}
}

func TestChecks(t *testing.T) {
	r := report{
		Hit:      hitCost{Without: 1, With: 10001}, // 10 µs a hit
		Baseline: summary{P50: 50 * time.Microsecond, TargetCPU: 30 * time.Microsecond},
		Agent:    summary{P50: 70 * time.Microsecond, TargetCPU: 50 * time.Microsecond, HitsPerReq: 2, AgentCPU: 10 * time.Microsecond},
		OTel:     summary{P50: 60 * time.Microsecond, TargetCPU: 80 * time.Microsecond},
	}
	want := []bool{true, true, true, true}
	for i, c := range r.checks() {
		if c.Pass != want[i] {
			t.Errorf("%s: pass = %v, want %v (%s)", c.Name, c.Pass, want[i], c.Value)
		}
	}
	r.Agent.HitsPerReq = 3 // now 20 µs added is under 30 µs budget but hits fail
	r.OTel.TargetCPU = 60 * time.Microsecond
	want = []bool{false, true, false, false}
	for i, c := range r.checks() {
		if c.Pass != want[i] {
			t.Errorf("%s: pass = %v, want %v (%s)", c.Name, c.Pass, want[i], c.Value)
		}
	}
}

func TestFdinfoProgID(t *testing.T) {
	id, ok := harness.FdinfoProgID("pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t2\nprog_jited:\t1\nprog_tag:\tabc\nmemlock:\t4096\nprog_id:\t567\n")
	if !ok || id != 567 {
		t.Fatalf("got %d, %v", id, ok)
	}
	if _, ok := harness.FdinfoProgID("pos:\t0\nflags:\t02\n"); ok {
		t.Fatal("prog_id found in a plain file's fdinfo")
	}
}

func TestChainChecks(t *testing.T) {
	// Without program statistics: the total less the server hops.
	r := report{ChainAgent: summary{HitsPerReq: 7}}
	c := r.chainChecks()
	if len(c) != 2 || !c[0].Pass || !c[1].Pass || c[0].Value != "3.0000 (all programs 7.0000 − 2 server hops)" {
		t.Fatalf("7 hits: %+v", c)
	}
	r.ChainAgent.HitsPerReq = 7.01 // a client request costing more than 3 hits
	if c := r.chainChecks(); c[0].Pass {
		t.Fatalf("7.01 hits passed: %+v", c)
	}
	// With them: GC hits count in the total but not against a request.
	r.ChainAgent.ProgSplit = hitSplit{Server: 4, Client: 3, Other: 0.01}
	if c := r.chainChecks(); !c[0].Pass || !c[1].Pass {
		t.Fatalf("server 4, client 3, runtime 0.01: %+v", c)
	}
	r.ChainAgent.ProgSplit.Client = 4
	if c := r.chainChecks(); c[0].Pass {
		t.Fatalf("client 4 passed: %+v", c)
	}
}

func TestChainedTraces(t *testing.T) {
	const a, b = 100, 200
	span := func(trace, id, parent string, pid int, kind tracepb.Span_SpanKind) harness.Span {
		return harness.Span{TraceID: trace, SpanID: id, ParentSpanID: parent, Kind: kind,
			Resource: map[string]any{"process.pid": int64(pid)}}
	}
	srv, cli := tracepb.Span_SPAN_KIND_SERVER, tracepb.Span_SPAN_KIND_CLIENT
	spans := []harness.Span{
		// Linked, arriving out of order.
		span("t1", "b1", "c1", b, srv), span("t1", "s1", "", a, srv), span("t1", "c1", "s1", a, cli),
		// B's span left in a trace of its own: two incomplete traces.
		span("t2", "s2", "", a, srv), span("t2", "c2", "s2", a, cli), span("t3", "b2", "", b, srv),
		// B under A's server span, not its client span.
		span("t4", "s4", "", a, srv), span("t4", "c4", "s4", a, cli), span("t4", "b4", "s4", b, srv),
		// A's server span not the root.
		span("t5", "s5", "x", a, srv), span("t5", "c5", "s5", a, cli), span("t5", "b5", "c5", b, srv),
		// Linked.
		span("t6", "s6", "", a, srv), span("t6", "c6", "s6", a, cli), span("t6", "b6", "c6", b, srv),
		// A span too many.
		span("t7", "s7", "", a, srv), span("t7", "c7", "s7", a, cli), span("t7", "b7", "c7", b, srv), span("t7", "b8", "c7", b, srv),
	}
	if n := chainedTraces(spans, a, b); n != 2 {
		t.Fatalf("%d chained traces, want 2", n)
	}
	if n := chainedTraces(spans, b, a); n != 0 {
		t.Fatalf("%d chained traces with A and B swapped, want 0", n)
	}
}

func TestSplitHits(t *testing.T) {
	got := splitHits(map[string]uint64{
		"uprobe_server_e": 1000, "uprobe_server_r": 1000,
		"uprobe_client_e": 500, "uprobe_client_r": 500,
		"uprobe_stw_entr": 4, "uprobe_stw_retu": 4,
	}, 500)
	if got != (hitSplit{Server: 4, Client: 2, Other: 0.016}) || got.Total() != 6.016 {
		t.Fatalf("got %+v", got)
	}
}

// The chained section comes after the existing ones, which stay as they
// were, and a chained request not exported as one trace is warned about.
func TestWriteChain(t *testing.T) {
	rd := round{P50: 100 * time.Microsecond, Spans: 30, SpansWanted: 30, Linked: 9}
	chainAgent := mode{Name: "chain-agent", Agent: true, Chain: true}
	r := report{
		Sections:      map[string]bool{"rounds": true, "discovery": true},
		Hit:           hitCost{Without: 1, With: 10001},
		Load:          load{Requests: 1000, Warmup: 10, Path: "/hello"},
		ChainLoad:     load{Requests: 1000, Warmup: 10, Path: "/hello"},
		Baseline:      summarize(mode{Name: "baseline"}, []round{rd}),
		Agent:         summarize(mode{Name: "agent", Agent: true}, []round{rd}),
		OTel:          summarize(mode{Name: "otelhttp", OTel: true}, []round{rd}),
		ChainBaseline: summarize(mode{Name: "chain-baseline", Chain: true}, []round{rd}),
		ChainAgent:    summarize(chainAgent, []round{{P50: 160 * time.Microsecond, HitsPerReq: 6, Spans: 30, SpansWanted: 30, Linked: 9}}),
	}
	var b strings.Builder
	r.write(&b)
	out := b.String()
	order := []string{"uprobe hit cost", "targets\n", "=== chained A → B ===", "chain-agent", "+60.0 µs", "+20.0 µs",
		"60.0 µs / (6.000 × 10.0 µs) = 1.00", "chained targets", "client request hits", "PASS",
		"chain-agent round 1: 9 of 10 chained requests exported as one trace"}
	at := 0
	for _, s := range order {
		i := strings.Index(out[at:], s)
		if i < 0 {
			t.Fatalf("%q missing after offset %d in:\n%s", s, at, out)
		}
		at += i + len(s)
	}
}

func TestParseStatState(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want byte
		err  bool
	}{
		{"42 (sleep) S 1 42 42 0 -1", 'S', false},
		{"42 (a) Z) Z 1 42", 'Z', false}, // the name's ") Z" is not the state
		{"42 (x)", 0, true},
		{"42 x S 1", 0, true},
	} {
		got, err := parseStatState(tc.stat)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q, error %v", tc.stat, got, err, tc.want, tc.err)
		}
	}
}

// Lines as golens writes them (slog's text handler).
const agentLog = `time=2026-11-25T15:44:56.745Z level=INFO msg="discovery running" exe=[/b/httpserver] systemd_unit=[] selected=0 targets=0
time=2026-11-25T15:44:58.855Z level=INFO msg=attached pid=259180 exe=/b/httpserver service=s go=go1.26.8 selected_by="exe=/b/httpserver" probes="[net/http runtime.gc]" uprobes=21 took=114ms since_exec=9s
time=2026-11-25T15:44:58.900Z level=INFO msg=attached pid=25918 exe=/b/httpserver service=s go=go1.26.8 selected_by="exe=/b/httpserver" probes="[net/http runtime.gc]" uprobes=21 took=114ms since_exec=115ms
time=2026-11-25T15:45:00.097Z level=INFO msg="target exited, probes released" pid=25918 took=251ms
time=2026-11-25T15:45:00.120Z level=INFO msg=detached pid=25918 reason=exited took=325ms
`

func TestParseLogLine(t *testing.T) {
	r, err := parseLogLine(`time=2026-11-25T15:44:58.855Z level=INFO msg="a \"quoted\" b" selected_by="exe=/x y" n=21  empty="" last=x=y`)
	if err != nil {
		t.Fatal(err)
	}
	want := logRecord{"time": "2026-11-25T15:44:58.855Z", "level": "INFO", "msg": `a "quoted" b`,
		"selected_by": "exe=/x y", "n": "21", "empty": "", "last": "x=y"}
	if len(r) != len(want) {
		t.Fatalf("got %q, want %q", r, want)
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %q, want %q", k, r[k], v)
		}
	}
	for _, bad := range []string{`msg="unterminated`, `time=x oops`, `"k"=v`} {
		if _, err := parseLogLine(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFindLog(t *testing.T) {
	r, ok := findLog(agentLog, 25918, attachedMsgs...)
	if !ok {
		t.Fatal("attached line of pid 25918 not found")
	}
	at, err := r.Time()
	if err != nil || !at.Equal(time.Date(2026, 11, 25, 15, 44, 58, 900e6, time.UTC)) {
		t.Errorf("time %v, %v", at, err)
	}
	if d, ok := r.Duration("since_exec"); !ok || d != 115*time.Millisecond {
		t.Errorf("since_exec %v, %v", d, ok)
	}
	if _, ok := r.Duration("exe"); ok {
		t.Error("exe read as a duration")
	}
	// The manager's exit watcher was first: its line counts as the release.
	r, ok = findLog(agentLog, 25918, releasedMsgs...)
	if !ok || r["time"] != "2026-11-25T15:45:00.097Z" {
		t.Errorf("released: %v, %v", r, ok)
	}
	if _, ok := findLog(agentLog, 2591, attachedMsgs...); ok {
		t.Error("pid 2591 found in lines of 25918 and 259180")
	}
	if _, ok := findLog(agentLog, 259180, releasedMsgs...); ok {
		t.Error("pid 259180 released")
	}
}

func TestSeries(t *testing.T) {
	text := `# HELP golens_discovery_rescans_total Scans of /proc by reason.
# TYPE golens_discovery_rescans_total counter
golens_discovery_rescans_total{reason="periodic"} 2
golens_discovery_rescans_total{reason="start"} 1
golens_discovery_rescans_total{reason="a b}"} 4
golens_discovery_execs_total 40
golens_discovery_broken_total x
golens_probe_hits_total 7
`
	got := seriesWithPrefix(text, "golens_discovery_")
	want := map[string]float64{
		`golens_discovery_rescans_total{reason="periodic"}`: 2,
		`golens_discovery_rescans_total{reason="start"}`:    1,
		`golens_discovery_rescans_total{reason="a b}"}`:     4,
		`golens_discovery_execs_total`:                      40,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if n, ok := sumSeries(got, "golens_discovery_rescans_total"); !ok || n != 7 {
		t.Errorf("rescans %v, %v", n, ok)
	}
	if _, ok := sumSeries(got, "golens_discovery_rescans"); ok {
		t.Error("a name's prefix summed as the name")
	}
	d := seriesDelta(map[string]float64{"a": 1, "gone": 5}, map[string]float64{"a": 3, "new": 2})
	if len(d) != 2 || d["a"] != 2 || d["new"] != 2 {
		t.Errorf("delta %v", d)
	}
	if s := seriesSummary(map[string]float64{"golens_discovery_b_total": 0, "golens_discovery_execs_total": 3, `golens_discovery_rescans_total{reason="periodic"}`: 2}); s != `execs_total +3, rescans_total{reason="periodic"} +2` {
		t.Errorf("summary %q", s)
	}
	if s := seriesSummary(nil); s != "not exported by this golens" {
		t.Errorf("summary of nothing %q", s)
	}
}

func TestIdleWindow(t *testing.T) {
	w := idleWindow{Wall: 65 * time.Second, CPU: 130 * time.Millisecond}
	if w.PerMinute() != 120*time.Millisecond || w.Core() != 0.2 {
		t.Errorf("%v per minute, %v %% of a core", w.PerMinute(), w.Core())
	}
	if _, ok := w.Rescans(); ok {
		t.Error("rescans without metrics")
	}
	w.Discovery = map[string]float64{`golens_discovery_rescans_total{reason="periodic"}`: 2, `golens_discovery_rescans_total{reason="start"}`: 0}
	if n, ok := w.Rescans(); !ok || n != 2 {
		t.Errorf("rescans %v, %v", n, ok)
	}
}

func TestFirstSpanOf(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(100, int64(ms)*1e6) }
	span := func(path string, pid int64, start time.Time) harness.Span {
		return harness.Span{Start: start, Attrs: map[string]any{"url.path": path}, Resource: map[string]any{"process.pid": pid}}
	}
	spans := []harness.Span{
		span("/echo/run-1", 7, at(5)),  // an older run's
		span("/echo/run-2", 8, at(30)), // same path, another process
		span("/echo/run-2", 9, at(20)),
		span("/echo/run-2", 9, at(10)),
		span("/echo/run-20", 9, at(1)),
	}
	if got, ok := firstSpanOf(spans, "/echo/run-2", 9); !ok || !got.Equal(at(10)) {
		t.Errorf("got %v, %v", got, ok)
	}
	if _, ok := firstSpanOf(spans, "/echo/run-3", 9); ok {
		t.Error("found a span of run 3")
	}
}

func TestDiscoveryChecks(t *testing.T) {
	run := func(attached, since time.Duration) execRun { return execRun{Attached: attached, SinceExec: since} }
	d := discoveryResult{Runs: []execRun{
		run(120*time.Millisecond, 118*time.Millisecond),
		run(1999*time.Millisecond, 0), // found by a scan: no since_exec
		run(100*time.Millisecond, 99*time.Millisecond),
	}}
	c := d.checks()
	if len(c) != 2 || !c[0].Pass || !c[1].Pass {
		t.Fatalf("%+v", c)
	}
	if c[0].Value != "120 ms (golens' since_exec 108 ms)" || c[1].Value != "1999 ms (golens' since_exec 118 ms)" || c[1].Name != "new process instrumented, exec → attached, max of 3" {
		t.Errorf("%+v", c)
	}
	d.Runs[1].Attached = 2 * time.Second
	if c := d.checks(); !c[0].Pass || c[1].Pass {
		t.Errorf("a start at 2 s: %+v", c)
	}
	d.Runs[0].Attached, d.Runs[2].Attached = 3*time.Second, 2500*time.Millisecond
	if c := d.checks(); c[0].Pass {
		t.Errorf("median 2.5 s: %+v", c)
	}
	if c := (discoveryResult{}).checks(); c[0].Pass || c[1].Pass || c[0].Value != "no start measured" {
		t.Errorf("no runs: %+v", c)
	}
}

func TestStatsOf(t *testing.T) {
	runs := []execRun{{FirstSpan: 900 * time.Millisecond}, {FirstSpan: 0}, {FirstSpan: 700 * time.Millisecond}, {FirstSpan: 1200 * time.Millisecond}, {FirstSpan: 800 * time.Millisecond}}
	s := statsOf(runs, func(r execRun) time.Duration { return r.FirstSpan })
	if s != (durationStats{Median: 850 * time.Millisecond, Max: 1200 * time.Millisecond, N: 4}) {
		t.Errorf("%+v", s)
	}
}

// The discovery section comes last, with both windows, what the idle
// processes add, the starts and the 2 s checks; a failure is said.
func TestWriteDiscovery(t *testing.T) {
	r := report{Sections: map[string]bool{"rounds": true, "discovery": true}, Load: load{Requests: 1000}, ChainLoad: load{Requests: 1000}, Discovery: discoveryResult{
		Glob: "/b/httpserver",
		Load: discoveryLoad{Window: 65 * time.Second, Idle: 500, Runs: 3},
		Windows: []idleWindow{
			{Procs: 70, Wall: 65 * time.Second, CPU: 130 * time.Millisecond},
			{Idle: 500, Procs: 570, Wall: 65 * time.Second, CPU: 195 * time.Millisecond,
				Discovery: map[string]float64{`golens_discovery_rescans_total{reason="periodic"}`: 2}},
		},
		Runs: []execRun{
			{Listening: 3e6, Attached: 120e6, SinceExec: 118e6, FirstReq: 121e6, FirstSpan: 900e6, Released: 300e6, Requests: 150},
			{Listening: 4e6, Attached: 140e6, SinceExec: 139e6, FirstReq: 141e6, FirstSpan: 1100e6, Released: 320e6, Requests: 190},
			{Listening: 3e6, Attached: 130e6, SinceExec: 128e6, FirstReq: 131e6, FirstSpan: 700e6, Released: 310e6, Requests: 110},
		},
	}}
	var b strings.Builder
	r.write(&b)
	out := b.String()
	order := []string{"=== chained A → B ===", "chained targets", "=== discovery (--exe) ===", "golens --exe /b/httpserver",
		"0        70  65.0 s     130 ms         120        0.200 %        -",
		"500       570  65.0 s     195 ms         180        0.300 %        2",
		"added by 500                                      +60       +0.100 %",
		"±9.2 ms/min",
		"with 0 idle processes: not exported by this golens",
		`with 500 idle processes: rescans_total{reason="periodic"} +2`,
		"started 3 times", "exec → attached (golens' log line)        130     140     3",
		"exec → first span at the receiver        900    1100     3",
		"per start, exec → attached | first span (ms): 120 140 130 | 900 1100 700; requests sent until the span came: median 150",
		"discovery targets", "exec → attached, median    130 ms (golens' since_exec 128 ms)  < 2 s  PASS",
		"max of 3  140 ms (golens' since_exec 139 ms)  < 2 s  PASS"}
	at := 0
	for _, s := range order {
		i := strings.Index(out[at:], s)
		if i < 0 {
			t.Fatalf("%q missing after offset %d in:\n%s", s, at, out)
		}
		at += i + len(s)
	}
	if strings.Contains(out, "stopped early") {
		t.Error("a failure reported")
	}

	r.Discovery.Runs = nil
	r.DiscoveryErr = fmt.Errorf("start 1 of 3: no span\ngolens log...")
	b.Reset()
	r.write(&b)
	out = b.String()
	if !strings.Contains(out, "!!! discovery section stopped early: start 1 of 3: no span\n") || strings.Contains(out, "golens log...") ||
		strings.Contains(out, "started 3 times") || !strings.Contains(out, "no start measured") {
		t.Errorf("failed section:\n%s", out[strings.Index(out, "=== discovery"):])
	}
}

// make bench fails on a missed target or a lost span, naming each.
func TestMissed(t *testing.T) {
	r := report{
		Sections:   map[string]bool{"rounds": true},
		Hit:        hitCost{Without: 1, With: 10001},
		Baseline:   summary{P50: 50 * time.Microsecond, TargetCPU: 30 * time.Microsecond},
		Agent:      summary{P50: 70 * time.Microsecond, TargetCPU: 50 * time.Microsecond, HitsPerReq: 2, AgentCPU: 10 * time.Microsecond},
		OTel:       summary{P50: 60 * time.Microsecond, TargetCPU: 80 * time.Microsecond},
		ChainAgent: summary{HitsPerReq: 6},
	}
	base := len(r.missed())
	r.Agent.HitsPerReq = 3
	got := r.missed()
	if len(got) <= base {
		t.Fatalf("3 hits per request missed nothing more than %d: %q", base, got)
	}
	if !strings.Contains(strings.Join(got, "\n"), "target ≤ 2") {
		t.Errorf("the missed hits target is not named: %q", got)
	}
	r.Agent.HitsPerReq = 2
	r.Agent.Rounds = []round{{Spans: 99, SpansWanted: 100}}
	if got := r.missed(); len(got) != base+1 || !strings.Contains(got[len(got)-1], "99 spans received") {
		t.Errorf("a lost span is not a miss: %q", got)
	}
}

func TestParseOnly(t *testing.T) {
	m, err := parseOnly("scale,ceiling")
	if err != nil || len(m) != 2 || !m["scale"] || !m["ceiling"] {
		t.Fatalf("scale,ceiling: %v, %v", m, err)
	}
	if m, err = parseOnly("all"); err != nil || len(m) != len(sections) {
		t.Fatalf("all: %v, %v", m, err)
	}
	if _, err = parseOnly("scale,nope"); err == nil {
		t.Fatal("an unknown section accepted")
	}
	if _, err := parseRates("1000,500"); err == nil {
		t.Fatal("decreasing rates accepted")
	}
	if r, err := parseRates("1000, 2000"); err != nil || len(r) != 2 || r[1] != 2000 {
		t.Fatalf("rates: %v, %v", r, err)
	}
}

func TestFdinfoMemlock(t *testing.T) {
	if n := fdinfoMemlock("pos:\t0\nflags:\t02000002\nmap_type:\t27\nmemlock:\t4198400\nmap_id:\t9\n"); n != 4198400 {
		t.Fatalf("memlock = %d", n)
	}
	if n := fdinfoMemlock("pos:\t0\n"); n != 0 {
		t.Fatalf("memlock without a line = %d", n)
	}
}

// The scale section fails make bench on each of its goals: RSS, loss,
// release, one inspection per binary.
func TestScaleChecks(t *testing.T) {
	objs := bpfFDs{Maps: 3, Progs: 1, Links: 1, MapMemlock: 1 << 20}
	good := scaleResult{
		Load: scaleLoad{Targets: 100, Churn: 1000}, Binaries: []string{"a", "b", "c"},
		Attached: 100, Released: 100, HWM: 80 << 20, Inspect: 3,
		Churned: 1000, Sent: 5000, Spans: 5000, Before: objs, After: objs,
	}
	for _, c := range good.checks() {
		if !c.Pass {
			t.Errorf("good run: %s missed: %s", c.Name, c.Value)
		}
	}
	for name, bad := range map[string]func(*scaleResult){
		"RSS":        func(r *scaleResult) { r.HWM = 101 << 20 },
		"inspection": func(r *scaleResult) { r.Inspect = 103 },
		"loss":       func(r *scaleResult) { r.Spans = 4999 },
		"failed":     func(r *scaleResult) { r.Failed = 1 },
		"link left":  func(r *scaleResult) { r.After.Links++ },
		"map left":   func(r *scaleResult) { r.After.MapMemlock += 4096 },
		"pid left":   func(r *scaleResult) { r.TargetsG = 1 },
		"unreleased": func(r *scaleResult) { r.Released = 99 },
	} {
		r := good
		bad(&r)
		rep := report{Sections: map[string]bool{"scale": true}, Scale: r}
		if len(rep.missed()) != 1 {
			t.Errorf("%s: missed %q, want one", name, rep.missed())
		}
	}
}

// The ceiling is the last rate without loss, and it says where loss began.
func TestCeilingBest(t *testing.T) {
	r := ceilingResult{Steps: []ceilingStep{
		{Offered: 1000, Achieved: 1000, Sent: 5000, Spans: 5000},
		{Offered: 2000, Achieved: 1990, Sent: 9950, Spans: 9950},
		{Offered: 5000, Achieved: 4900, Sent: 24500, Spans: 24000, Dropped: map[string]float64{`golens_spans_dropped_total{reason="queue_full"}`: 500}},
	}}
	best, lossy := r.Best()
	if best != 1990 || lossy == nil || lossy.Offered != 5000 {
		t.Fatalf("best %v, lossy %+v", best, lossy)
	}
	var b strings.Builder
	r.write(&b, nil)
	if !strings.Contains(b.String(), `loss starts at 4900 spans/s offered 5000, in the export queue (golens_spans_dropped_total: 500 reason="queue_full")`) {
		t.Errorf("report:\n%s", b.String())
	}
}
