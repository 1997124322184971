package sampler

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// slaState tracks one service's health and the scale it puts on root
// sampling.
type slaState struct {
	win   timeWindow
	scale float64
	next  time.Time // when health is evaluated next
	last  Health
}

// Health is a service's SLA state as last evaluated.
type Health struct {
	Service string
	// Samples, P95 and ErrorRatio are measured over the SLA window.
	Samples    uint64
	P95        time.Duration
	ErrorRatio float64
	// Breach is true when the service missed its SLA at the last evaluation.
	Breach bool
	// Scale is the factor on the service's root sampling rate.
	Scale float64
	// Evaluated is when health was last evaluated (zero: not yet).
	Evaluated time.Time
}

// Observe records one finished request of a service (for a server: each
// server span, isError for a 5xx) towards its SLA health. Observing is what
// turns SLA feedback on for a service.
func (s *Sampler) Observe(service string, d time.Duration, isError bool) {
	s.ObserveAt(time.Time{}, service, d, isError)
}

// ObserveAt is Observe at now, as DecideAt is Decide.
func (s *Sampler) ObserveAt(now time.Time, service string, d time.Duration, isError bool) {
	now = readAt(s.cfg.Clock, s.callerTime, now)
	st := s.strategies.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.service(service)
	if svc.sla == nil {
		svc.sla = &slaState{
			win:   newTimeWindow(s.cfg.SLA.Window),
			scale: s.clampScale(1),
			next:  now.Add(s.cfg.SLA.Interval),
		}
		svc.sla.last = Health{Service: service, Scale: svc.sla.scale}
	}
	svc.sla.win.observe(now, d, isError)
	s.evaluate(now, st, service, svc)
}

// scale returns the SLA factor of a service, evaluating its health first if
// an evaluation is due; s.mu is held.
func (s *Sampler) scale(now time.Time, st *strategiesGen, service string, svc *serviceState) float64 {
	if svc.sla == nil {
		return s.clampScale(1)
	}
	s.evaluate(now, st, service, svc)
	return svc.sla.scale
}

// evaluate adjusts the scale once per interval: down by Decrease under
// breach, up by Increase for each interval that passed while healthy, so a
// service that went quiet recovers as if it had been evaluated all along;
// s.mu is held.
func (s *Sampler) evaluate(now time.Time, st *strategiesGen, service string, svc *serviceState) {
	a := svc.sla
	if now.Before(a.next) {
		return
	}
	c := &s.cfg.SLA
	periods := 1 + int64(now.Sub(a.next)/c.Interval)
	target := st.lookup(service)
	p95, maxErr := c.P95, c.MaxErrorRatio
	if target.SLAP95 > 0 {
		p95 = target.SLAP95
	}
	if target.SLAMaxErrorRatio > 0 {
		maxErr = target.SLAMaxErrorRatio
	}
	sum := a.win.summarize(now)
	breach := sum.count >= uint64(c.MinSamples) &&
		((p95 > 0 && sum.p95 > p95) || sum.errorRatio > maxErr)
	if breach {
		a.scale *= c.Decrease
	} else {
		a.scale *= math.Pow(c.Increase, float64(min(periods, 64)))
	}
	a.scale = s.clampScale(a.scale)
	a.next = now.Add(c.Interval)
	a.last = Health{
		Service: service, Samples: sum.count, P95: sum.p95, ErrorRatio: sum.errorRatio,
		Breach: breach, Scale: a.scale, Evaluated: now,
	}
}

func (s *Sampler) clampScale(v float64) float64 {
	return min(max(v, s.cfg.SLA.Floor), s.cfg.SLA.Ceiling)
}

// Health returns the SLA state of every observed service, sorted by name.
func (s *Sampler) Health() []Health {
	now := s.cfg.Clock.Now()
	st := s.strategies.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Health
	for name, svc := range s.services {
		if svc.sla == nil {
			continue
		}
		s.evaluate(now, st, name, svc)
		out = append(out, svc.sla.last)
	}
	slices.SortFunc(out, func(a, b Health) int { return cmp.Compare(a.Service, b.Service) })
	return out
}
