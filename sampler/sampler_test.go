package sampler

import (
	"reflect"
	"sync"
	"testing"
	"time"
)

const decideStrategies = `{
  "default_strategy": {"type": "probabilistic", "param": 1},
  "service_strategies": [
    {"service": "api", "type": "probabilistic", "param": 1, "latency_threshold_ms": 100,
     "operation_strategies": [
       {"operation": "GET /never", "type": "probabilistic", "param": 0},
       {"operation": "GET /limited", "type": "ratelimiting", "param": 1},
       {"operation": "GET /slow-ok", "type": "probabilistic", "param": 0, "latency_threshold_ms": 5000}]},
    {"service": "limited", "type": "ratelimiting", "param": 2}
  ]}`

func TestDecide(t *testing.T) {
	id := TraceID{15: 1}
	ms := time.Millisecond
	tests := []struct {
		name string
		span Span
		want Decision
	}{
		{"parent sampled", Span{Service: "api", Operation: "GET /never", TraceID: id, Parent: true, ParentSampled: true, Duration: ms},
			Decision{Keep: true, Reason: ReasonParentSampled}},
		{"parent not sampled", Span{Service: "api", Operation: "GET /", TraceID: id, Parent: true, Duration: ms},
			Decision{Reason: ReasonParentNotSampled}},
		{"error beats parent not sampled", Span{Service: "api", Operation: "GET /", TraceID: id, Parent: true, Error: true, Duration: ms},
			Decision{Keep: true, Reason: ReasonCriticalError}},
		{"error beats probability 0", Span{Service: "api", Operation: "GET /never", TraceID: id, Error: true, Duration: ms},
			Decision{Keep: true, Reason: ReasonCriticalError}},
		{"slower than the service threshold", Span{Service: "api", Operation: "GET /never", TraceID: id, Parent: true, Duration: 101 * ms},
			Decision{Keep: true, Reason: ReasonCriticalLatency}},
		{"exactly at the threshold is not critical", Span{Service: "api", Operation: "GET /never", TraceID: id, Duration: 100 * ms},
			Decision{Reason: ReasonDroppedProbabilistic, Threshold: NeverThreshold}},
		{"operation threshold overrides the service's", Span{Service: "api", Operation: "GET /slow-ok", TraceID: id, Duration: 4 * time.Second},
			Decision{Reason: ReasonDroppedProbabilistic, Threshold: NeverThreshold}},
		{"root kept by probability 1", Span{Service: "api", Operation: "GET /", TraceID: id, Duration: ms},
			Decision{Keep: true, Reason: ReasonProbabilistic, Threshold: 0, TraceState: "ot=th:0"}},
		{"root dropped by probability 0", Span{Service: "api", Operation: "GET /never", TraceID: id, Duration: ms},
			Decision{Reason: ReasonDroppedProbabilistic, Threshold: NeverThreshold}},
		{"root rate limited", Span{Service: "limited", Operation: "GET /", TraceID: id, Duration: ms},
			Decision{Keep: true, Reason: ReasonRateLimited}},
		{"unknown service follows the default", Span{Service: "other", Operation: "GET /", TraceID: id, Duration: ms},
			Decision{Keep: true, Reason: ReasonProbabilistic, TraceState: "ot=th:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{Clock: newFakeClock()}, mustParse(t, decideStrategies))
			if got := s.Decide(tt.span); got != tt.want {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
			if n := s.Stats().Decisions[tt.want.Reason]; n != 1 {
				t.Errorf("Stats().Decisions[%s] = %d, want 1", tt.want.Reason, n)
			}
		})
	}
}

func TestNoFileDefaults(t *testing.T) {
	clock := newFakeClock()
	s := New(Config{Clock: clock}, nil)
	ids := randomIDs(1, 3000)
	kept := 0
	for _, id := range ids {
		if s.Decide(Span{Service: "svc", Operation: "GET /", TraceID: id, Duration: time.Millisecond}).Keep {
			kept++
		}
	}
	// 3000 roots in the same instant: one second's worth of tokens.
	if kept != DefaultRate {
		t.Errorf("kept %d roots at once, want the default burst %d", kept, DefaultRate)
	}
	// Another service has its own limit.
	if d := s.Decide(Span{Service: "other", TraceID: ids[0]}); d.Reason != ReasonRateLimited {
		t.Errorf("other service: %+v, want rate limited", d)
	}
	// Parents are followed.
	if d := s.Decide(Span{Service: "svc", TraceID: ids[0], Parent: true, ParentSampled: true}); d.Reason != ReasonParentSampled {
		t.Errorf("with parent: %+v, want parent_sampled", d)
	}
}

func TestCriticalTraceKeepsLaterSpans(t *testing.T) {
	clock := newFakeClock()
	s := New(Config{Clock: clock, CriticalTTL: time.Minute}, mustParse(t, `{"default_strategy": {"type": "probabilistic", "param": 0}}`))
	id, other := TraceID{1}, TraceID{2}
	if d := s.Decide(Span{Service: "db", TraceID: id, Error: true}); d.Reason != ReasonCriticalError {
		t.Fatalf("error span: %+v", d)
	}
	clock.Advance(59 * time.Second)
	if d := s.Decide(Span{Service: "api", TraceID: id, Parent: true}); d != (Decision{Keep: true, Reason: ReasonCriticalTrace}) {
		t.Errorf("later span of the critical trace: %+v, want kept as critical_trace", d)
	}
	if d := s.Decide(Span{Service: "api", TraceID: other, Parent: true}); d.Keep {
		t.Errorf("span of another trace: %+v, want dropped", d)
	}
	clock.Advance(2 * time.Second)
	if d := s.Decide(Span{Service: "api", TraceID: id, Parent: true}); d.Keep {
		t.Errorf("after the TTL: %+v, want dropped", d)
	}
	if got := s.Stats().CriticalTraces; got != 0 {
		t.Errorf("CriticalTraces = %d after expiry, want 0", got)
	}
}

func TestAdaptiveLatencyThreshold(t *testing.T) {
	s := New(Config{Clock: newFakeClock()}, mustParse(t, `{"default_strategy": {"type": "probabilistic", "param": 0}}`))
	decide := func(d time.Duration) Decision {
		return s.Decide(Span{Service: "api", Operation: "GET /", TraceID: TraceID{3}, Duration: d})
	}
	// 99 samples of 1..99 ms: not enough for a p99 yet.
	for i := 1; i < DefaultLatencyMinSamples; i++ {
		decide(time.Duration(i) * time.Millisecond)
	}
	if d := decide(time.Second); d.Keep {
		t.Fatalf("with %d samples a 1 s span was kept (%s); want no adaptive threshold yet", DefaultLatencyMinSamples-1, d.Reason)
	}
	// Now 100 samples, p99 = 99 ms by nearest rank of {1..99, 1000}.
	if d := decide(98 * time.Millisecond); d.Keep {
		t.Errorf("98 ms span kept (%s), want dropped: under the p99", d.Reason)
	}
	if d := decide(150 * time.Millisecond); d.Reason != ReasonCriticalLatency {
		t.Errorf("150 ms span: %+v, want critical_latency over the p99", d)
	}
	// Another operation has its own window.
	if d := s.Decide(Span{Service: "api", Operation: "GET /other", TraceID: TraceID{9}, Duration: time.Hour}); d.Keep {
		t.Errorf("other operation: %+v, want no threshold yet", d)
	}
}

func TestLatencyWindowSlides(t *testing.T) {
	s := New(Config{Clock: newFakeClock(), LatencyWindow: 200}, mustParse(t, `{"default_strategy": {"type": "probabilistic", "param": 0}}`))
	decide := func(d time.Duration) Decision {
		return s.Decide(Span{Service: "api", Operation: "GET /", TraceID: TraceID{4}, Duration: d})
	}
	for range 200 {
		decide(time.Second)
	}
	// The window now holds only 1 s samples; 200 faster ones replace them.
	for range 200 {
		decide(10 * time.Millisecond)
	}
	for range recomputeEvery {
		decide(10 * time.Millisecond)
	}
	if d := decide(500 * time.Millisecond); d.Reason != ReasonCriticalLatency {
		t.Errorf("500 ms after the window moved to 10 ms: %+v, want critical_latency", d)
	}
}

func TestMaxOperations(t *testing.T) {
	s := New(Config{Clock: newFakeClock(), MaxOperations: 2}, nil)
	for _, op := range []string{"a", "b", "c", "c"} {
		s.Decide(Span{Service: "api", Operation: op, TraceID: TraceID{5}})
	}
	if got := s.Stats().UntrackedSpans; got != 2 {
		t.Errorf("UntrackedSpans = %d, want 2", got)
	}
}

func TestProbabilisticRate(t *testing.T) {
	ids := randomIDs(42, 20000)
	for _, p := range []float64{0.1, 0.5, 0.01} {
		st := mustParse(t, `{"default_strategy": {"type": "probabilistic", "param": `+ftoa(p)+`}}`)
		s := New(Config{Clock: newFakeClock()}, st)
		kept := 0
		for _, id := range ids {
			d := s.Decide(Span{Service: "svc", Operation: "GET /", TraceID: id})
			if d.Keep {
				kept++
				if want := ThresholdFor(p).TraceState(); d.TraceState != want {
					t.Fatalf("p=%v: TraceState %q, want %q", p, d.TraceState, want)
				}
			}
		}
		inBinomialBand(t, "p="+ftoa(p), kept, len(ids), p, 5)
	}
}

// One sampler keeps spans of services at different probabilities in turn:
// each decision records its own service's threshold (the sampler keeps the
// last one written, and must not hand it to another service).
func TestTraceStatePerService(t *testing.T) {
	st := mustParse(t, `{"default_strategy": {"type": "probabilistic", "param": 1},
		"service_strategies": [{"service": "half", "type": "probabilistic", "param": 0.5},
		{"service": "tenth", "type": "probabilistic", "param": 0.1}]}`)
	s := New(Config{Clock: newFakeClock()}, st)
	want := map[string]string{"all": ThresholdFor(1).TraceState(), "half": ThresholdFor(0.5).TraceState(), "tenth": ThresholdFor(0.1).TraceState()}
	kept := map[string]int{}
	for i, id := range randomIDs(7, 3000) {
		svc := []string{"all", "half", "tenth"}[i%3]
		d := s.Decide(Span{Service: svc, Operation: "GET /", TraceID: id})
		if !d.Keep {
			continue
		}
		kept[svc]++
		if d.TraceState != want[svc] {
			t.Fatalf("span %d of %s: TraceState %q, want %q", i, svc, d.TraceState, want[svc])
		}
	}
	if kept["all"] != 1000 || kept["half"] == 0 || kept["tenth"] == 0 {
		t.Fatalf("kept %v: want 1000 of all and some of the others", kept)
	}
}

func TestConsistentAcrossSamplers(t *testing.T) {
	// Two golens with the same rate, on different nodes, started at different
	// times, with different history, decide the same for every trace.
	js := `{"default_strategy": {"type": "probabilistic", "param": 0.3}}`
	a := New(Config{Clock: newFakeClock()}, mustParse(t, js))
	b := New(Config{}, mustParse(t, js))
	for _, id := range randomIDs(7, 500) {
		b.Decide(Span{Service: "warmup", TraceID: id})
	}
	th := ThresholdFor(0.3)
	for i, id := range randomIDs(8, 5000) {
		da := a.Decide(Span{Service: "frontend", Operation: "GET /", TraceID: id})
		db := b.Decide(Span{Service: "backend", Operation: "POST /x", TraceID: id})
		if da != db {
			t.Fatalf("trace %d %s: %+v on one node, %+v on the other", i, id, da, db)
		}
		if da.Keep != th.Keep(id) {
			t.Fatalf("trace %s: Keep=%v, threshold test says %v", id, da.Keep, th.Keep(id))
		}
	}
}

func TestRateLimit(t *testing.T) {
	tests := []struct {
		name     string
		rate     float64
		arrivals float64 // per second, Poisson
		seconds  int
	}{
		{"busy service", 10, 200, 60},
		{"fractional rate", 0.5, 50, 120},
		{"rate above traffic keeps everything", 100, 20, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			st := mustParse(t, `{"default_strategy": {"type": "ratelimiting", "param": `+ftoa(tt.rate)+`}}`)
			s := New(Config{Clock: clock}, st)
			r := newRand(uint64(tt.rate * 1000))
			end := clock.Now().Add(time.Duration(tt.seconds) * time.Second)
			kept, n := 0, 0
			for clock.Now().Before(end) {
				clock.Advance(time.Duration(r.ExpFloat64() / tt.arrivals * float64(time.Second)))
				n++
				if s.Decide(Span{Service: "svc", TraceID: TraceID{byte(n)}}).Keep {
					kept++
				}
			}
			if tt.arrivals < tt.rate {
				// Poisson traffic can briefly exceed the rate; allow the
				// odd drop, within binomial noise of a tiny drop rate.
				if kept < n-5 {
					t.Errorf("kept %d of %d under the rate, want nearly all", kept, n)
				}
				return
			}
			burst := max(tt.rate, 1)
			lo, hi := tt.rate*float64(tt.seconds)-burst, tt.rate*float64(tt.seconds)+burst
			if float64(kept) < lo || float64(kept) > hi {
				t.Errorf("kept %d of %d in %d s at %v/s, want within [%.0f, %.0f]", kept, n, tt.seconds, tt.rate, lo, hi)
			}
			if e := s.Effective("svc", ""); e.TracesPerSecond != tt.rate || e.Probability > 2*tt.rate/tt.arrivals {
				t.Errorf("Effective = %+v, want %v/s and a kept fraction near %.3f", e, tt.rate, tt.rate/tt.arrivals)
			}
		})
	}
}

func TestOperationRateLimitIsSeparate(t *testing.T) {
	s := New(Config{Clock: newFakeClock()}, mustParse(t, decideStrategies))
	var limited, rest int
	for i := range 10 {
		if s.Decide(Span{Service: "api", Operation: "GET /limited", TraceID: TraceID{byte(i)}}).Keep {
			limited++
		}
		if s.Decide(Span{Service: "limited", Operation: "GET /limited", TraceID: TraceID{byte(i)}}).Keep {
			rest++
		}
	}
	if limited != 1 || rest != 2 {
		t.Errorf("kept %d of api GET /limited (want 1) and %d of limited (want 2)", limited, rest)
	}
}

func TestRates(t *testing.T) {
	s := New(Config{Clock: newFakeClock()}, mustParse(t, `{
	  "default_strategy": {"type": "probabilistic", "param": 0.1},
	  "service_strategies": [{"service": "api", "type": "probabilistic", "param": 0.5,
	    "operation_strategies": [{"operation": "GET /a", "type": "ratelimiting", "param": 3}]},
	    {"service": "listed", "type": "probabilistic", "param": 0.3}]}`))
	s.Decide(Span{Service: "seen", TraceID: TraceID{1}})
	s.Decide(Span{Service: "api", TraceID: TraceID{2}})
	// "listed" is in the file but not seen on this node: not exported.
	got := s.Rates()
	want := []Effective{
		{Service: "api", Type: Probabilistic, Probability: 0.5, Scale: 1},
		{Service: "api", Operation: "GET /a", Type: RateLimiting, Probability: 1, TracesPerSecond: 3, Scale: 1},
		{Service: "seen", Type: Probabilistic, Probability: ThresholdFor(0.1).Probability(), Scale: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Rates() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestStatsCountsEveryReason(t *testing.T) {
	s := New(Config{Clock: newFakeClock()}, nil)
	st := s.Stats()
	for _, r := range Reasons() {
		if n, ok := st.Decisions[r]; !ok || n != 0 {
			t.Errorf("Decisions[%s] = %d, %v; want 0, present", r, n, ok)
		}
	}
	if !ReasonCriticalTrace.Critical() || ReasonProbabilistic.Critical() {
		t.Error("Reason.Critical misclassifies")
	}
}

func TestConcurrentUse(t *testing.T) {
	s := New(Config{}, mustParse(t, decideStrategies))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i, id := range randomIDs(uint64(g), 2000) {
				s.Decide(Span{Service: "api", Operation: "GET /limited", TraceID: id, Error: i%97 == 0, Duration: time.Duration(i) * time.Microsecond})
				s.Observe("api", time.Millisecond, i%50 == 0)
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			s.Rates()
			s.Health()
			s.Stats()
			s.SetStrategies(mustParse(t, decideStrategies))
		}
	})
	wg.Wait()
	var total uint64
	for _, n := range s.Stats().Decisions {
		total += n
	}
	if total != 4*2000 {
		t.Errorf("counted %d decisions, want %d", total, 4*2000)
	}
}

func BenchmarkDecide(b *testing.B) {
	st, err := Parse([]byte(decideStrategies))
	if err != nil {
		b.Fatal(err)
	}
	s := New(Config{}, st)
	ids := randomIDs(1, 1024)
	ops := []string{"GET /", "GET /limited", "GET /never", "POST /x"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Decide(Span{Service: "api", Operation: ops[i%len(ops)], TraceID: ids[i%len(ids)], Duration: time.Duration(i%1000) * time.Microsecond})
	}
}

// DecideAt uses the caller's clock reading when the sampler has no clock of
// its own (the agent reads the clock once per span and passes it on), and
// its own clock when one is configured (tests drive time through it).
func TestDecideAtTime(t *testing.T) {
	const js = `{"default_strategy": {"type": "ratelimiting", "param": 1}}`
	root := Span{Service: "svc", Operation: "GET /", TraceID: TraceID{1}}
	// Far from the real clock: only the caller's readings refill the bucket.
	t0 := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(Config{}, mustParse(t, js))
	for i, c := range []struct {
		at   time.Time
		keep bool
	}{{t0, true}, {t0, false}, {t0.Add(1100 * time.Millisecond), true}, {t0.Add(1100 * time.Millisecond), false}} {
		if d := s.DecideAt(c.at, root); d.Keep != c.keep {
			t.Errorf("caller time, decision %d at %v: keep %v (%s), want %v", i, c.at, d.Keep, d.Reason, c.keep)
		}
	}
	clock := newFakeClock()
	s = New(Config{Clock: clock}, mustParse(t, js))
	if d := s.DecideAt(t0, root); !d.Keep {
		t.Errorf("own clock: first root dropped (%s)", d.Reason)
	}
	if d := s.DecideAt(t0.Add(time.Hour), root); d.Keep {
		t.Errorf("own clock: a caller's later time refilled the bucket (%s)", d.Reason)
	}
	clock.Advance(1100 * time.Millisecond)
	if d := s.DecideAt(t0, root); !d.Keep {
		t.Errorf("own clock: advanced 1.1 s, root dropped (%s)", d.Reason)
	}
}
