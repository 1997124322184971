package tracer

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/sampler"
	"github.com/golens/golens/span"
)

type discard struct{}

func (discard) ExportSpans(context.Context, []*span.Span) error { return nil }
func (discard) Shutdown(context.Context) error                  { return nil }

// BenchmarkRecord is the agent's user-space cost per server span, up to the
// exporter: span building, linking, sampling, queueing.
func BenchmarkRecord(b *testing.B) {
	strat, _ := sampler.Parse([]byte(`{"default_strategy": {"type": "probabilistic", "param": 1}}`))
	tr := New(discard{}, Options{
		Linker:  NewLinker(owners(func(netip.AddrPort) (int, bool) { return 0, false })),
		Sampler: sampler.New(sampler.Config{}, strat),
	})
	defer tr.Shutdown(context.Background())
	p := &event.Process{PID: 1, ServiceName: "svc", ExeName: "svc"}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e := &event.HTTPServer{Process: p, Start: now, End: now.Add(time.Millisecond), Method: "GET", Path: "/hello",
			Route: "/hello", Host: "127.0.0.1:8080", RemoteAddr: "127.0.0.1:5555", Status: 200, ProtoMajor: 1, ProtoMinor: 1,
			SpanContext: event.SpanContext{TraceID: event.TraceID{byte(i), byte(i >> 8), byte(i >> 16), 1}, SpanID: event.SpanID{1}}}
		tr.Record(e)
	}
}

// benchSpans are n spans as the agent makes them: HTTP server spans of two
// services.
func benchSpans(n int) []*span.Span {
	procs := []*event.Process{
		{PID: 1, ServiceName: "frontend", ExeName: "frontend", ExePath: "/usr/bin/frontend", GoVersion: "go1.26.0"},
		{PID: 2, ServiceName: "backend", ExeName: "backend", ExePath: "/usr/bin/backend", GoVersion: "go1.26.0"},
	}
	res := []*span.Resource{ProcessResource(procs[0], "node-1"), ProcessResource(procs[1], "node-1")}
	now := time.Now()
	spans := make([]*span.Span, 0, n)
	for i := range n {
		p := i % 2
		e := &event.HTTPServer{Process: procs[p], Start: now, End: now.Add(time.Millisecond), Method: "GET", Path: "/hello/42",
			Route: "/hello/{id}", Host: "127.0.0.1:8080", RemoteAddr: "127.0.0.1:5555", Status: 200, ProtoMajor: 1, ProtoMinor: 1,
			SpanContext: event.SpanContext{TraceID: event.TraceID{byte(i), byte(i >> 8), 1}, SpanID: event.SpanID{byte(i), 2}, Parent: event.SpanID{byte(i), 3}}}
		s := e.Span()
		s.Resource, s.Scope = res[p], Scope
		spans = append(spans, &s)
	}
	return spans
}
