package main

import (
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
	id, ok := fdinfoProgID("pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t2\nprog_jited:\t1\nprog_tag:\tabc\nmemlock:\t4096\nprog_id:\t567\n")
	if !ok || id != 567 {
		t.Fatalf("got %d, %v", id, ok)
	}
	if _, ok := fdinfoProgID("pos:\t0\nflags:\t02\n"); ok {
		t.Fatal("prog_id found in a plain file's fdinfo")
	}
}

func TestChainChecks(t *testing.T) {
	// Without program statistics: the total less the server hops.
	r := report{ChainAgent: summary{HitsPerReq: 6}}
	c := r.chainChecks()
	if len(c) != 2 || !c[0].Pass || !c[1].Pass || c[0].Value != "2.0000 (all programs 6.0000 − 2 server hops)" {
		t.Fatalf("6 hits: %+v", c)
	}
	r.ChainAgent.HitsPerReq = 6.01 // a client request costing more than 2 hits
	if c := r.chainChecks(); c[0].Pass {
		t.Fatalf("6.01 hits passed: %+v", c)
	}
	// With them: GC hits count in the total but not against a request.
	r.ChainAgent.ProgSplit = hitSplit{Server: 4, Client: 2, Other: 0.01}
	if c := r.chainChecks(); !c[0].Pass || !c[1].Pass {
		t.Fatalf("server 4, client 2, runtime 0.01: %+v", c)
	}
	r.ChainAgent.ProgSplit.Client = 3
	if c := r.chainChecks(); c[0].Pass {
		t.Fatalf("client 3 passed: %+v", c)
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
