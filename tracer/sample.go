package tracer

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/golens/golens/sampler"
)

// sampling applies the sampler's decisions to spans ready for export. It
// sees spans after the linker, so a trace started on this node arrives as
// one group: its local root and everything under it, decided together.
type sampling struct {
	s    *sampler.Sampler
	hold *sampler.Hold[*tracetest.SpanStub]
	// lastTS caches the last trace state parsed: a service's decisions
	// carry the same one, span after span.
	lastTS atomic.Pointer[parsedTS]
}

type parsedTS struct {
	raw string
	ts  trace.TraceState
}

// traceState parses raw, or returns the cached parse of the same string.
func (p *sampling) traceState(raw string) trace.TraceState {
	if c := p.lastTS.Load(); c != nil && c.raw == raw {
		return c.ts
	}
	ts, _ := trace.ParseTraceState(raw)
	p.lastTS.Store(&parsedTS{raw: raw, ts: ts})
	return ts
}

func newSampling(s *sampler.Sampler, keep func(*tracetest.SpanStub)) *sampling {
	return &sampling{
		s: s,
		hold: sampler.NewHold(sampler.HoldConfig{}, func(st *tracetest.SpanStub, d sampler.Decision) {
			if d.Keep {
				keep(st)
			}
		}),
	}
}

func (p *sampling) run(ctx context.Context) { p.hold.Run(ctx) }

func spanInfo(st *tracetest.SpanStub) sampler.Span {
	svc := ""
	if st.Resource != nil {
		if v, ok := st.Resource.Set().Value("service.name"); ok {
			svc = v.AsString()
		}
	}
	return sampler.Span{
		Service:       svc,
		Operation:     st.Name,
		TraceID:       sampler.TraceID(st.SpanContext.TraceID()),
		Parent:        st.Parent.IsValid(),
		ParentSampled: st.Parent.IsSampled(),
		Error:         st.Status.Code == codes.Error,
		Duration:      st.EndTime.Sub(st.StartTime),
	}
}

// decide takes spans released together and hands each to the hold with its
// decision. Spans of one trace are decided as a unit: the local root (the
// span whose parent is not among them) by its strategy or its parent's
// flag, the others follow it, and a critical span anywhere keeps them all.
func (p *sampling) decide(stubs []*tracetest.SpanStub) {
	if len(stubs) == 1 {
		// Most releases are one span (a server span whose caller is not
		// watched): no grouping to do.
		p.decideGroup(stubs)
		return
	}
	for _, group := range byTrace(stubs) {
		p.decideGroup(group)
	}
}

// decideGroup decides the spans of one trace.
func (p *sampling) decideGroup(group []*tracetest.SpanStub) {
	root := group[0]
	if len(group) > 1 {
		ids := make(map[trace.SpanID]bool, len(group))
		for _, st := range group {
			ids[st.SpanContext.SpanID()] = true
		}
		for _, st := range group {
			if !st.Parent.IsValid() || !ids[st.Parent.SpanID()] {
				root = st
				break
			}
		}
	}
	rootD := p.s.Decide(spanInfo(root))
	decisions := make([]sampler.Decision, len(group))
	critical := rootD.Reason.Critical()
	for i, st := range group {
		if st == root {
			decisions[i] = rootD
			continue
		}
		info := spanInfo(st)
		info.Parent, info.ParentSampled = true, rootD.Keep
		decisions[i] = p.s.Decide(info)
		critical = critical || decisions[i].Reason.Critical()
	}
	var ts trace.TraceState
	if rootD.TraceState != "" {
		ts = p.traceState(rootD.TraceState)
	}
	for i, st := range group {
		d := decisions[i]
		if critical && !d.Keep {
			// On the path of an error or a slow span: keep it.
			d = sampler.Decision{Keep: true, Reason: sampler.ReasonCriticalTrace}
		}
		if d.Keep && ts.Len() > 0 {
			st.SpanContext = st.SpanContext.WithTraceState(ts)
		}
		p.hold.Add(sampler.TraceID(st.SpanContext.TraceID()), st, d)
	}
}

// byTrace splits stubs by trace id, keeping their order.
func byTrace(stubs []*tracetest.SpanStub) [][]*tracetest.SpanStub {
	idx := make(map[trace.TraceID]int)
	var out [][]*tracetest.SpanStub
	for _, st := range stubs {
		id := st.SpanContext.TraceID()
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
