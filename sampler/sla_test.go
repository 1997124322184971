package sampler

import (
	"math"
	"testing"
	"time"
)

func TestSLAScaleDownAndRecover(t *testing.T) {
	clock := newFakeClock()
	s := New(Config{Clock: clock, SLA: SLAConfig{P95: 100 * time.Millisecond}},
		mustParse(t, `{"default_strategy": {"type": "probabilistic", "param": 0.8}}`))
	// observe sends n requests, then lets an evaluation interval pass.
	observe := func(n int, d time.Duration, errEvery int) {
		for i := range n {
			s.Observe("api", d, errEvery > 0 && i%errEvery == 0)
		}
		clock.Advance(DefaultSLAInterval)
	}
	scale := func() float64 { return s.Effective("api", "").Scale }

	observe(100, 20*time.Millisecond, 0)
	if got := scale(); got != 1 {
		t.Fatalf("healthy scale = %v, want 1 (the ceiling)", got)
	}
	// p95 300 ms > 100 ms: halve at every evaluation, down to the floor.
	want := 1.0
	for i := range 6 {
		observe(100, 300*time.Millisecond, 0)
		want = math.Max(want*DefaultSLADecrease, DefaultSLAFloor)
		if got := scale(); math.Abs(got-want) > 1e-12 {
			t.Fatalf("breach evaluation %d: scale %v, want %v", i+1, got, want)
		}
	}
	if want != DefaultSLAFloor {
		t.Fatalf("test did not reach the floor: %v", want)
	}
	h := s.Health()
	if len(h) != 1 || !h[0].Breach || h[0].P95 < 250*time.Millisecond || h[0].P95 > 375*time.Millisecond {
		t.Errorf("Health() = %+v, want api in breach with p95 near 300 ms", h)
	}
	// The effective probability follows: 0.8 × floor.
	if e := s.Effective("api", ""); math.Abs(e.Probability-0.8*DefaultSLAFloor) > 1e-4 {
		t.Errorf("Effective = %+v, want probability %v", e, 0.8*DefaultSLAFloor)
	}
	// Healthy again: the slow samples leave the 60 s window, then the
	// scale grows by 1.25 per evaluation up to the ceiling, never above.
	for range 6 {
		observe(100, 20*time.Millisecond, 0)
	}
	prev := scale()
	for i := 0; prev < 1; i++ {
		observe(100, 20*time.Millisecond, 0)
		got := scale()
		if want := math.Min(prev*DefaultSLAIncrease, 1); math.Abs(got-want) > 1e-12 {
			t.Fatalf("recovery evaluation %d: scale %v, want %v", i+1, got, want)
		}
		prev = got
		if i > 30 {
			t.Fatal("no recovery")
		}
	}
	observe(100, 20*time.Millisecond, 0)
	if got := scale(); got != 1 {
		t.Errorf("scale = %v after recovery, want the ceiling 1", got)
	}
}

func TestSLABreaches(t *testing.T) {
	const files = `{"default_strategy": {"type": "probabilistic", "param": 1},
	  "service_strategies": [
	    {"service": "tolerant", "type": "probabilistic", "param": 1, "sla_max_error_ratio": 0.05},
	    {"service": "strict", "type": "probabilistic", "param": 1, "sla_p95_latency_ms": 50}]}`
	tests := []struct {
		name     string
		service  string
		p95      time.Duration // Config.SLA.P95
		n        int
		errors   int
		duration time.Duration
		breach   bool
	}{
		{"2% errors breach the 1% default", "api", 0, 200, 4, time.Millisecond, true},
		{"0.5% errors are healthy", "api", 0, 200, 1, time.Millisecond, false},
		{"file allows 5% errors", "tolerant", 0, 200, 4, time.Millisecond, false},
		{"latency is ignored without a P95", "api", 0, 200, 0, time.Hour, false},
		{"slow p95 breaches the configured P95", "api", 200 * time.Millisecond, 200, 0, time.Second, true},
		{"file P95 overrides the configured one", "strict", time.Hour, 200, 0, 80 * time.Millisecond, true},
		{"too few samples to judge", "api", 0, DefaultSLAMinSamples - 1, DefaultSLAMinSamples - 1, time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := New(Config{Clock: clock, SLA: SLAConfig{P95: tt.p95}}, mustParse(t, files))
			for i := range tt.n {
				s.Observe(tt.service, tt.duration, i < tt.errors)
			}
			clock.Advance(DefaultSLAInterval)
			h := s.Health()
			if len(h) != 1 || h[0].Breach != tt.breach {
				t.Fatalf("Health() = %+v, want breach=%v", h, tt.breach)
			}
			want := 1.0
			if tt.breach {
				want = DefaultSLADecrease
			}
			if got := s.Effective(tt.service, "").Scale; got != want {
				t.Errorf("scale = %v, want %v", got, want)
			}
		})
	}
}

func TestSLAScalesDecisionsNotCriticalSpans(t *testing.T) {
	clock := newFakeClock()
	s := New(Config{Clock: clock, SLA: SLAConfig{Floor: 0.25, Ceiling: 1}},
		mustParse(t, `{"default_strategy": {"type": "probabilistic", "param": 1},
		  "service_strategies": [{"service": "rl", "type": "ratelimiting", "param": 100}]}`))
	for _, svc := range []string{"api", "rl"} {
		for range 100 {
			s.Observe(svc, time.Millisecond, true)
		}
	}
	for range 3 {
		clock.Advance(DefaultSLAInterval)
		s.Health()
	}
	// 1 × 0.5 × 0.5 × 0.5, held at the floor of 0.25.
	d := s.Decide(Span{Service: "api", TraceID: TraceID{15: 0xff, 14: 0xff, 13: 0xff, 12: 0xff, 11: 0xff, 10: 0xff, 9: 0xff}})
	if d.Reason != ReasonProbabilistic || d.TraceState != "ot=th:c" {
		t.Errorf("root under breach: %+v, want probabilistic at 0.25 (th:c)", d)
	}
	if e := s.Effective("rl", ""); e.TracesPerSecond != 25 {
		t.Errorf("rate-limited service under breach: %+v, want 25/s", e)
	}
	ids := randomIDs(3, 4000)
	kept := 0
	for _, id := range ids {
		if s.Decide(Span{Service: "api", TraceID: id}).Keep {
			kept++
		}
		if d := s.Decide(Span{Service: "api", TraceID: id, Error: true}); !d.Keep {
			t.Fatalf("error span dropped under breach: %+v", d)
		}
	}
	inBinomialBand(t, "api at scale 0.25", kept, len(ids), 0.25, 5)
}

func TestSLAIdleServiceRecovers(t *testing.T) {
	clock := newFakeClock()
	s := New(Config{Clock: clock}, nil)
	for range 100 {
		s.Observe("api", time.Millisecond, true)
	}
	for range 4 {
		clock.Advance(DefaultSLAInterval)
		s.Health()
	}
	if got := s.Effective("api", "").Scale; got != 1.0/16 {
		t.Fatalf("scale after 4 breaches = %v, want 1/16", got)
	}
	// Quiet for 3 minutes: every interval counts as a healthy one, and
	// 1.25^13 > 16.
	clock.Advance(3 * time.Minute)
	if got := s.Effective("api", "").Scale; got != 1 {
		t.Errorf("scale after 3 quiet minutes = %v, want 1", got)
	}
}
