// Package sampler decides which spans golens keeps.
//
// Operators set the volume with a Jaeger strategies file (Parse, Load,
// Watcher); a span that arrives with a traceparent follows its parent's
// sampled flag; a root follows its service/operation strategy, probabilistic
// decisions being taken on the trace id's random bits so every golens with
// the same rate agrees. Whatever the strategy, spans that end in error or
// exceed their operation's latency threshold are kept as critical, and so
// are the later spans of their trace (Critical) and the ones finished just
// before (Hold). Per service, the root sampling rate shrinks while the
// service breaches its SLA and recovers when it is healthy again. Handler
// serves the effective strategies to OpenTelemetry SDKs using the Jaeger
// remote sampler.
//
// A tracer wires it up like this:
//
//	s := sampler.New(sampler.Config{SLA: sampler.SLAConfig{P95: p95}}, nil)
//	if file != "" { // --sampling-strategies
//		w, err := sampler.NewWatcher(file, s, sampler.WatchConfig{})
//		if err != nil { ... refuse to start ... }
//		g.Go(func() error { return w.Run(ctx) })
//	}
//	hold := sampler.NewHold(sampler.HoldConfig{}, export) // export(span, decision)
//	g.Go(func() error { return hold.Run(ctx) })
//	mux.Handle("/sampling", s.Handler()) // --sampling-server-addr
//
//	// for each finished span:
//	d := s.Decide(sampler.Span{...})
//	hold.Add(sampler.TraceID(traceID), span, d) // export gets it, kept or not
//	// for each finished server span, towards the service's SLA:
//	s.Observe(service, duration, e.Failed()) // the event's own error rule
//
// Metrics read Stats (decisions by reason), Rates (effective probability per
// service and operation), Health and the Hold's Stats.
//
// The package is pure: no eBPF, no global state, time comes from a Clock.
package sampler

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultCriticalTTL       = 300 * time.Second
	DefaultCriticalMax       = 100_000
	DefaultLatencyMinSamples = 100
	DefaultLatencyWindow     = 1000
	DefaultMaxOperations     = 10_000
	DefaultSLAWindow         = 60 * time.Second
	DefaultSLAInterval       = 10 * time.Second
	DefaultSLAMaxErrorRatio  = 0.01
	DefaultSLAMinSamples     = 20
	DefaultSLADecrease       = 0.5
	DefaultSLAIncrease       = 1.25
	DefaultSLAFloor          = 0.05
	DefaultSLACeiling        = 1.0
)

// Config tunes a Sampler; the zero value of each field means its default.
type Config struct {
	// Clock is the time source; nil is the system clock.
	Clock Clock
	// CriticalTTL is how long a critical trace id is remembered (300 s).
	CriticalTTL time.Duration
	// CriticalMax bounds the remembered critical trace ids (100000).
	CriticalMax int
	// LatencyMinSamples is how many durations an operation needs before its
	// p99 serves as latency threshold (100).
	LatencyMinSamples int
	// LatencyWindow is how many of an operation's latest durations the p99
	// is taken over (1000).
	LatencyWindow int
	// MaxOperations bounds the service/operation pairs whose latency is
	// tracked (10000); beyond it, an operation without a latency_threshold_ms
	// has no latency threshold.
	MaxOperations int
	// SLA is the health target and how sampling reacts to a breach.
	SLA SLAConfig
}

// SLAConfig sets when a service breaches its SLA and how its root sampling
// rate (probability or traces per second) is scaled in response.
type SLAConfig struct {
	// P95 is the latency the service's p95 must stay under; zero leaves
	// latency out (the file's sla_p95_latency_ms sets it per service).
	P95 time.Duration
	// MaxErrorRatio is the highest healthy share of errors (0.01).
	MaxErrorRatio float64
	// Window is how far back health is measured (60 s).
	Window time.Duration
	// Interval is how often health is evaluated and the scale adjusted (10 s).
	Interval time.Duration
	// MinSamples is how many observations in the window it takes to judge a
	// breach (20); with fewer, the service counts as healthy.
	MinSamples int
	// Decrease multiplies the scale at each evaluation under breach (0.5).
	Decrease float64
	// Increase multiplies the scale at each healthy evaluation (1.25).
	Increase float64
	// Floor and Ceiling bound the scale (0.05 and 1).
	Floor, Ceiling float64
}

func (c *Config) defaults() {
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	setDefault(&c.CriticalTTL, DefaultCriticalTTL)
	setDefault(&c.CriticalMax, DefaultCriticalMax)
	setDefault(&c.LatencyMinSamples, DefaultLatencyMinSamples)
	setDefault(&c.LatencyWindow, DefaultLatencyWindow)
	c.LatencyWindow = max(c.LatencyWindow, c.LatencyMinSamples)
	setDefault(&c.MaxOperations, DefaultMaxOperations)
	s := &c.SLA
	setDefault(&s.MaxErrorRatio, DefaultSLAMaxErrorRatio)
	setDefault(&s.Window, DefaultSLAWindow)
	setDefault(&s.Interval, DefaultSLAInterval)
	setDefault(&s.MinSamples, DefaultSLAMinSamples)
	setDefault(&s.Decrease, DefaultSLADecrease)
	setDefault(&s.Increase, DefaultSLAIncrease)
	setDefault(&s.Floor, DefaultSLAFloor)
	setDefault(&s.Ceiling, DefaultSLACeiling)
	s.Floor = min(s.Floor, s.Ceiling)
}

func setDefault[T time.Duration | int | float64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Span is what a decision looks at: one finished span.
type Span struct {
	Service   string
	Operation string
	TraceID   TraceID
	// Parent is true when the span's parent was decided elsewhere: an
	// incoming traceparent (or a local parent already decided); ParentSampled
	// is that parent's sampled flag.
	Parent        bool
	ParentSampled bool
	// Error is true when the span ended in error (for a server, a 5xx).
	Error    bool
	Duration time.Duration
}

// Reason says why a span was kept or dropped.
type Reason string

// The reasons of a Decision.
const (
	ReasonParentSampled        Reason = "parent_sampled"
	ReasonParentNotSampled     Reason = "parent_not_sampled"
	ReasonProbabilistic        Reason = "probabilistic"
	ReasonDroppedProbabilistic Reason = "dropped_probabilistic"
	ReasonRateLimited          Reason = "ratelimited"
	ReasonDroppedRateLimited   Reason = "dropped_ratelimited"
	ReasonCriticalError        Reason = "critical_error"
	ReasonCriticalLatency      Reason = "critical_latency"
	ReasonCriticalTrace        Reason = "critical_trace"
)

// Reasons lists every Reason, for metrics that want all series up front.
func Reasons() []Reason {
	return []Reason{
		ReasonParentSampled, ReasonParentNotSampled,
		ReasonProbabilistic, ReasonDroppedProbabilistic,
		ReasonRateLimited, ReasonDroppedRateLimited,
		ReasonCriticalError, ReasonCriticalLatency, ReasonCriticalTrace,
	}
}

// Critical reports whether the reason is one of the critical_* ones.
func (r Reason) Critical() bool {
	return strings.HasPrefix(string(r), "critical_")
}

// Decision is the verdict on one span.
type Decision struct {
	Keep   bool
	Reason Reason
	// Threshold is the rejection threshold a probabilistic decision applied
	// (ReasonProbabilistic, ReasonDroppedProbabilistic); zero otherwise.
	Threshold Threshold
	// TraceState is the tracestate member to record on a span kept by
	// probability ("ot=th:…"); empty otherwise: a parent-based span keeps
	// the parent's tracestate, and critical or rate-limited spans have no
	// known probability, so they must carry no th.
	TraceState string
}

// Sampler makes sampling decisions. It is safe for concurrent use.
type Sampler struct {
	cfg Config
	// callerTime says the times callers pass (DecideAt, ObserveAt) are
	// used: no Clock was configured. A configured one is the only time.
	callerTime bool
	strategies atomic.Pointer[strategiesGen]
	critical   *Critical

	mu       sync.Mutex
	services map[string]*serviceState
	ops      int // tracked operations, bounded by cfg.MaxOperations
	scratch  []time.Duration
	// The tracestate member of the last threshold kept at: a service's
	// threshold stays the same span after span, and writing it costs a
	// formatting and two allocations.
	lastTh   Threshold
	lastThTS string

	decisions      map[Reason]*atomic.Uint64 // fixed keys: read without the lock
	untracked      atomic.Uint64
	reloads        atomic.Uint64
	reloadFailures atomic.Uint64
}

// strategiesGen numbers strategies so per-operation state can notice a swap.
type strategiesGen struct {
	*Strategies
	gen uint64
}

// serviceState is what the sampler learns about one service at run time.
type serviceState struct {
	bucket    bucket             // service-level rate limit
	opBuckets map[string]*bucket // rate limits of operations with their own strategy
	gen       uint64             // strategies generation opBuckets belong to
	ops       map[string]*window // recent durations per operation
	sla       *slaState          // nil until the service is observed
}

// New returns a Sampler using st, or DefaultStrategies when st is nil.
func New(cfg Config, st *Strategies) *Sampler {
	callerTime := cfg.Clock == nil
	cfg.defaults()
	s := &Sampler{
		cfg:        cfg,
		callerTime: callerTime,
		critical:   NewCritical(cfg.CriticalTTL, cfg.CriticalMax, cfg.Clock),
		services:   make(map[string]*serviceState),
		decisions:  make(map[Reason]*atomic.Uint64),
	}
	for _, r := range Reasons() {
		s.decisions[r] = new(atomic.Uint64)
	}
	s.SetStrategies(st)
	return s
}

// SetStrategies swaps in new strategies at once; what the sampler has
// learned (latencies, SLA scale, rate limiter balance) is kept. A nil st
// restores DefaultStrategies.
func (s *Sampler) SetStrategies(st *Strategies) {
	if st == nil {
		st = DefaultStrategies()
	}
	var gen uint64
	if old := s.strategies.Load(); old != nil {
		gen = old.gen + 1
	}
	s.strategies.Store(&strategiesGen{Strategies: st, gen: gen})
}

// Strategies returns the strategies in use.
func (s *Sampler) Strategies() *Strategies {
	return s.strategies.Load().Strategies
}

// Critical returns the sampler's memory of critical traces.
func (s *Sampler) Critical() *Critical {
	return s.critical
}

// Decide decides whether to keep a finished span, in this order: a span that
// ended in error or ran slower than its operation's latency threshold is
// kept as critical and its trace remembered; a span of a remembered trace is
// kept; a span with a parent follows the parent's sampled flag; a root
// follows its service/operation strategy, scaled by the service's SLA
// health.
func (s *Sampler) Decide(sp Span) Decision { return s.DecideAt(time.Time{}, sp) }

// DecideAt is Decide at now, a clock reading the caller made anyway (zero:
// the sampler reads its clock). A hot path reads the clock once per span,
// not once per step.
func (s *Sampler) DecideAt(now time.Time, sp Span) Decision {
	now = readAt(s.cfg.Clock, s.callerTime, now)
	st := s.strategies.Load()
	strategy, own := st.lookup(sp.Service).operation(sp.Operation)

	s.mu.Lock()
	svc := s.service(sp.Service)
	threshold := strategy.LatencyThreshold
	if w := s.window(svc, sp.Operation); w != nil {
		if threshold == 0 {
			threshold, _ = w.quantile(0.99, s.cfg.LatencyMinSamples, &s.scratch)
		}
		w.add(sp.Duration, s.cfg.LatencyWindow)
	}
	var d Decision
	switch {
	case sp.Error:
		d = Decision{Keep: true, Reason: ReasonCriticalError}
	case threshold > 0 && sp.Duration > threshold:
		d = Decision{Keep: true, Reason: ReasonCriticalLatency}
	case s.critical.Contains(sp.TraceID):
		d = Decision{Keep: true, Reason: ReasonCriticalTrace}
	case sp.Parent && sp.ParentSampled:
		d = Decision{Keep: true, Reason: ReasonParentSampled}
	case sp.Parent:
		d = Decision{Reason: ReasonParentNotSampled}
	default:
		d = s.root(now, st, svc, sp, strategy, own)
	}
	s.mu.Unlock()

	if d.Reason == ReasonCriticalError || d.Reason == ReasonCriticalLatency {
		s.critical.Mark(sp.TraceID)
	}
	s.decisions[d.Reason].Add(1)
	return d
}

// root applies the strategy to a root span; s.mu is held.
func (s *Sampler) root(now time.Time, st *strategiesGen, svc *serviceState, sp Span, strategy Strategy, own bool) Decision {
	scale := s.scale(now, st, sp.Service, svc)
	if strategy.Type == Probabilistic {
		t := ThresholdFor(strategy.Param * scale)
		if t.Keep(sp.TraceID) {
			if s.lastThTS == "" || s.lastTh != t {
				s.lastTh, s.lastThTS = t, t.TraceState()
			}
			return Decision{Keep: true, Reason: ReasonProbabilistic, Threshold: t, TraceState: s.lastThTS}
		}
		return Decision{Reason: ReasonDroppedProbabilistic, Threshold: t}
	}
	b := &svc.bucket
	if own {
		b = s.opBucket(st.gen, svc, sp.Operation)
	}
	if b.take(now, strategy.Param*scale) {
		return Decision{Keep: true, Reason: ReasonRateLimited}
	}
	return Decision{Reason: ReasonDroppedRateLimited}
}

// service returns the state of a service, creating it; s.mu is held.
func (s *Sampler) service(name string) *serviceState {
	svc, ok := s.services[name]
	if !ok {
		svc = &serviceState{ops: make(map[string]*window)}
		s.services[name] = svc
	}
	return svc
}

// window returns the latency window of an operation, or nil once
// MaxOperations are tracked; s.mu is held.
func (s *Sampler) window(svc *serviceState, op string) *window {
	if w, ok := svc.ops[op]; ok {
		return w
	}
	if s.ops >= s.cfg.MaxOperations {
		s.untracked.Add(1)
		return nil
	}
	w := &window{}
	svc.ops[op] = w
	s.ops++
	return w
}

// opBucket returns the rate limiter of an operation with its own strategy,
// starting afresh when the strategies changed; s.mu is held.
func (s *Sampler) opBucket(gen uint64, svc *serviceState, op string) *bucket {
	if svc.opBuckets == nil || svc.gen != gen {
		svc.opBuckets, svc.gen = make(map[string]*bucket), gen
	}
	b, ok := svc.opBuckets[op]
	if !ok {
		b = &bucket{}
		svc.opBuckets[op] = b
	}
	return b
}

// Effective is the root sampling in force for a service/operation after SLA
// scaling.
type Effective struct {
	Service string
	// Operation is empty for the service-level strategy.
	Operation string
	Type      Type
	// Probability is the effective probability of a Probabilistic strategy;
	// for RateLimiting, the recent fraction of roots the limiter let through
	// (1 before any).
	Probability float64
	// TracesPerSecond is the effective rate of a RateLimiting strategy.
	TracesPerSecond float64
	// Scale is the SLA factor applied to the strategy's Param.
	Scale float64
}

// Effective returns the root sampling in force for service/operation.
func (s *Sampler) Effective(service, operation string) Effective {
	now := s.cfg.Clock.Now()
	st := s.strategies.Load()
	strategy, own := st.lookup(service).operation(operation)
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[service]
	e := Effective{Service: service, Type: strategy.Type, Scale: s.clampScale(1)}
	if own {
		e.Operation = operation
	}
	if svc != nil {
		e.Scale = s.scale(now, st, service, svc)
	}
	s.fill(&e, st, svc, strategy)
	return e
}

// fill sets the probability and rate of e; s.mu is held.
func (s *Sampler) fill(e *Effective, st *strategiesGen, svc *serviceState, strategy Strategy) {
	if strategy.Type == Probabilistic {
		e.Probability = ThresholdFor(strategy.Param * e.Scale).Probability()
		return
	}
	e.TracesPerSecond = strategy.Param * e.Scale
	e.Probability = 1
	var b *bucket
	switch {
	case svc == nil:
	case e.Operation == "":
		b = &svc.bucket
	case svc.gen == st.gen:
		b = svc.opBuckets[e.Operation]
	}
	if b != nil && !b.last.IsZero() {
		e.Probability = b.kept
	}
}

// Rates returns the effective sampling of every service the sampler has
// seen, service level and each operation with its own strategy, sorted:
// what golens_sampling_probability{service_name, operation} exports. The
// services are those of this node's targets, not every service a
// cluster-wide strategies file lists, so the series stay as few as the
// targets (and MaxServiceOperations per service).
func (s *Sampler) Rates() []Effective {
	st := s.strategies.Load()
	s.mu.Lock()
	names := slices.Sorted(maps.Keys(s.services))
	s.mu.Unlock()
	var out []Effective
	for _, name := range names {
		ss := st.lookup(name)
		out = append(out, s.Effective(name, ""))
		for _, op := range slices.Sorted(maps.Keys(ss.Operations)) {
			out = append(out, s.Effective(name, op))
		}
	}
	return out
}

// Stats is a snapshot of the sampler's counters.
type Stats struct {
	// Decisions counts decisions by reason, every Reason present.
	Decisions map[Reason]uint64
	// CriticalTraces is how many trace ids are remembered as critical;
	// CriticalEvicted how many were forgotten early to stay bounded.
	CriticalTraces  int
	CriticalEvicted uint64
	// UntrackedSpans counts spans whose operation got no latency tracking
	// because MaxOperations were tracked already.
	UntrackedSpans uint64
	// Reloads counts strategies applied by a Watcher; ReloadFailures the
	// changed files it rejected.
	Reloads        uint64
	ReloadFailures uint64
}

// Stats returns the sampler's counters.
func (s *Sampler) Stats() Stats {
	st := Stats{
		Decisions:       make(map[Reason]uint64, len(s.decisions)),
		CriticalTraces:  s.critical.Len(),
		CriticalEvicted: s.critical.Evicted(),
		UntrackedSpans:  s.untracked.Load(),
		Reloads:         s.reloads.Load(),
		ReloadFailures:  s.reloadFailures.Load(),
	}
	for r, n := range s.decisions {
		st.Decisions[r] = n.Load()
	}
	return st
}
