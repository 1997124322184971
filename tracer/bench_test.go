package tracer

import (
	"context"
	"net/netip"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/sampler"
)

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

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
