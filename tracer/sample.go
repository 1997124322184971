package tracer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/golens/golens/sampler"
	"github.com/golens/golens/span"
)

// sampling applies the sampler's decisions to spans ready for export. It
// sees spans after the linker, so a trace started on this node arrives as
// one group: its local root and everything under it, decided together.
type sampling struct {
	s    *sampler.Sampler
	hold *sampler.Hold[*span.Span]
	// traces remembers how each trace was decided here, for spans that
	// join it afterwards (see decideGroup).
	traces decided
	// lastTS caches the last trace state parsed: a service's decisions
	// carry the same one, span after span.
	lastTS atomic.Pointer[parsedTS]
}

type parsedTS struct {
	raw string
	ts  string // raw as the W3C rules keep it: "" when malformed
}

// traceState returns raw in its W3C form, or the cached form of the same
// string.
func (p *sampling) traceState(raw string) string {
	if c := p.lastTS.Load(); c != nil && c.raw == raw {
		return c.ts
	}
	ts, _ := trace.ParseTraceState(raw)
	p.lastTS.Store(&parsedTS{raw: raw, ts: ts.String()})
	return ts.String()
}

// newSampling hands every span kept to keep, saying whether it is
// critical (an error, a latency outlier, or in a trace one of those made
// critical), which backpressure never thins.
func newSampling(s *sampler.Sampler, keep func(st *span.Span, critical bool)) *sampling {
	return &sampling{
		s: s,
		hold: sampler.NewHold(sampler.HoldConfig{}, func(st *span.Span, d sampler.Decision) {
			if d.Keep {
				keep(st, d.Reason.Critical())
			}
		}),
	}
}

func (p *sampling) run(ctx context.Context) { p.hold.Run(ctx) }

func spanInfo(st *span.Span) sampler.Span {
	svc := ""
	if st.Resource != nil {
		svc = st.Resource.Service
	}
	return sampler.Span{
		Service:       svc,
		Operation:     st.Name,
		TraceID:       sampler.TraceID(st.TraceID),
		Parent:        st.HasParent(),
		ParentSampled: st.ParentSampled(),
		Error:         st.Status == span.Error,
		Duration:      st.Duration(),
	}
}

// decide takes spans released together and hands each to the hold with its
// decision. Spans of one trace are decided as a unit: the local root (the
// span whose parent is not among them) by its strategy or its parent's
// flag, the others follow it, and a critical span anywhere keeps them all.
func (p *sampling) decide(now time.Time, stubs []*span.Span) {
	if len(stubs) == 1 {
		// Most releases are one span (a server span whose caller is not
		// watched): no grouping to do.
		p.decideGroup(now, stubs)
		return
	}
	for _, group := range byTrace(stubs) {
		p.decideGroup(now, group)
	}
}

// decideGroup decides the spans of one trace.
func (p *sampling) decideGroup(now time.Time, group []*span.Span) {
	root := group[0]
	if len(group) > 1 {
		ids := make(map[span.SpanID]bool, len(group))
		for _, st := range group {
			ids[st.SpanID] = true
		}
		for _, st := range group {
			if !st.HasParent() || !ids[st.Parent] {
				root = st
				break
			}
		}
	}
	// A callee on this node is joined to its caller's trace once its
	// caller's client span is known, which can be after the caller's own
	// spans were released and decided: the callee then follows that
	// decision, not the flag its parent span was minted with (a new
	// trace's ids carry "sampled" before any decision).
	info := spanInfo(root)
	id := root.TraceID
	keep, known := false, false
	if info.Parent {
		keep, known = p.traces.get(id)
		if known {
			info.ParentSampled = keep
		}
	}
	rootD := p.s.DecideAt(now, info)
	// Most groups are one span: its decision stays on the stack.
	var one [1]sampler.Decision
	decisions := one[:]
	if len(group) > 1 {
		decisions = make([]sampler.Decision, len(group))
	}
	critical := rootD.Reason.Critical()
	for i, st := range group {
		if st == root {
			decisions[i] = rootD
			continue
		}
		info := spanInfo(st)
		info.Parent, info.ParentSampled = true, rootD.Keep
		decisions[i] = p.s.DecideAt(now, info)
		critical = critical || decisions[i].Reason.Critical()
	}
	// Remembered is what a later span of the trace could not tell from
	// its parent's flag: every span golens mints says "sampled", so a
	// kept trace needs no entry (at keep-all, none is written: a map
	// insert per span was ~9% of the CPU profile); a dropped trace, or
	// one an error or a slow span made critical, does.
	if !known && !rootD.Keep || critical {
		p.traces.put(id, rootD.Keep || critical)
	}
	var ts string
	if rootD.TraceState != "" {
		ts = p.traceState(rootD.TraceState)
	}
	for i, st := range group {
		d := decisions[i]
		if critical && !d.Keep {
			// On the path of an error or a slow span: keep it.
			d = sampler.Decision{Keep: true, Reason: sampler.ReasonCriticalTrace}
		}
		if d.Keep && ts != "" {
			st.TraceState = ts
		}
		p.hold.AddAt(now, sampler.TraceID(st.TraceID), st, d)
	}
}

// byTrace splits stubs by trace id, keeping their order.
func byTrace(stubs []*span.Span) [][]*span.Span {
	idx := make(map[span.TraceID]int)
	var out [][]*span.Span
	for _, st := range stubs {
		id := st.TraceID
		i, ok := idx[id]
		if !ok {
			i = len(out)
			idx[id] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], st)
	}
	return out
}

// decided is a bounded memory of trace decisions: two generations of at
// most decidedMax traces each, the older dropped as the newer fills or
// ages past decidedAge. A trace is remembered for decidedAge at least
// while fewer than decidedMax traces a generation are decided; a joiner
// comes within the linker's window (about a second) of its caller.
type decided struct {
	mu       sync.Mutex
	cur, old map[span.TraceID]bool
	since    time.Time
}

const (
	decidedMax = 1 << 16
	decidedAge = 15 * time.Second
)

func (d *decided) get(id span.TraceID) (keep, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if keep, ok = d.cur[id]; !ok {
		keep, ok = d.old[id]
	}
	return keep, ok
}

func (d *decided) put(id span.TraceID, keep bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if d.cur == nil || len(d.cur) >= decidedMax || now.Sub(d.since) > decidedAge {
		// The generation dropped becomes the next one, emptied: a map
		// cleared keeps its buckets, so a steady rate of traces stops
		// growing (and rehashing, and allocating) maps after the first
		// two generations.
		next := d.old
		if next == nil {
			next = make(map[span.TraceID]bool)
		}
		clear(next)
		d.old, d.cur, d.since = d.cur, next, now
	}
	d.cur[id] = keep
}
