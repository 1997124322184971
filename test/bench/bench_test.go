package main

import (
	"testing"
	"time"
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
