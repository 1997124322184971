package spanmodel

import (
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/golens/golens/otlp"
	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/span"
	"github.com/golens/golens/tracer"
)

const batch = 512 // the tracer's default batch

// events are a batch of HTTP server requests of two services, as the
// reader delivers them.
func events() []*event.HTTPServer {
	procs := []*event.Process{
		{PID: 1, ServiceName: "frontend", ExeName: "frontend", ExePath: "/usr/bin/frontend", GoVersion: "go1.26.0"},
		{PID: 2, ServiceName: "backend", ExeName: "backend", ExePath: "/usr/bin/backend", GoVersion: "go1.26.0"},
	}
	now := time.Unix(1_700_000_000, 0)
	out := make([]*event.HTTPServer, batch)
	for i := range out {
		out[i] = &event.HTTPServer{Process: procs[i%2], Start: now, End: now.Add(time.Millisecond), Method: "GET", Path: "/hello/42",
			Route: "/hello/{id}", Host: "127.0.0.1:8080", RemoteAddr: "127.0.0.1:5555", Status: 200, ProtoMajor: 1, ProtoMinor: 1,
			SpanContext: event.SpanContext{TraceID: event.TraceID{byte(i), byte(i >> 8), 1}, SpanID: event.SpanID{byte(i), 2},
				Parent: event.SpanID{byte(i), 3}, Flags: 1, Traceparent: event.TraceparentValid}}
	}
	return out
}

// golensPath is the agent's path: the event fills a span.Span (one per
// span, as the tracer allocates it), the resource is the process's, and
// the batch is encoded into the encoder's reused buffer.
type golensPath struct {
	res   map[*event.Process]*span.Resource
	spans []*span.Span
	enc   otlp.TraceEncoder
}

func (g *golensPath) run(evs []*event.HTTPServer) []byte {
	if g.res == nil {
		g.res = make(map[*event.Process]*span.Resource)
	}
	g.spans = g.spans[:0]
	for _, e := range evs {
		s := new(span.Span)
		*s = e.Span()
		r := g.res[e.Process]
		if r == nil {
			r = tracer.ProcessResource(e.Process, "node-1")
			g.res[e.Process] = r
		}
		s.Resource, s.Scope = r, tracer.Scope
		g.spans = append(g.spans, s)
	}
	return g.enc.Encode(g.spans)
}

// pdataPath is the same with the Collector's model: the event fills a
// ptrace.Span in the ResourceSpans of its process, and the batch is
// marshalled by pdata's own protobuf marshaler. A batch is a new
// ptrace.Traces, as a pipeline hands each on.
type pdataPath struct{ m ptrace.ProtoMarshaler }

func (p *pdataPath) run(evs []*event.HTTPServer) []byte {
	td := ptrace.NewTraces()
	scopes := make(map[*event.Process]ptrace.SpanSlice)
	for _, e := range evs {
		spans, ok := scopes[e.Process]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			for it := tracer.ProcessResource(e.Process, "node-1").Attrs.Iter(); it.Next(); {
				kv := it.Attribute()
				if v, ok := kv.Value.AsInterface().(int64); ok {
					rs.Resource().Attributes().PutInt(string(kv.Key), v)
				} else {
					rs.Resource().Attributes().PutStr(string(kv.Key), kv.Value.AsString())
				}
			}
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(tracer.Scope.Name)
			ss.Scope().SetVersion(tracer.Scope.Version)
			spans = ss.Spans()
			scopes[e.Process] = spans
		}
		fillServer(spans.AppendEmpty(), e)
	}
	b, err := p.m.MarshalTraces(td)
	if err != nil {
		panic(err)
	}
	return b
}

// fillServer is event.HTTPServer.Span written against pdata: the same
// attributes in the same order, for the requests of this benchmark
// (known method, a route, both addresses).
func fillServer(s ptrace.Span, e *event.HTTPServer) {
	route := e.RouteTemplate()
	s.SetTraceID(pcommon.TraceID(e.TraceID))
	s.SetSpanID(pcommon.SpanID(e.SpanID))
	s.SetParentSpanID(pcommon.SpanID(e.Parent))
	s.SetFlags(uint32(span.FlagSampled) | 0x100 | 0x200)
	s.SetName(e.Method + " " + route)
	s.SetKind(ptrace.SpanKindServer)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(e.Start))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(e.End))
	a := s.Attributes()
	a.EnsureCapacity(9)
	a.PutStr("http.request.method", e.Method)
	a.PutStr("url.path", e.Path)
	a.PutInt("http.response.status_code", int64(e.Status))
	a.PutStr("http.route", route)
	host, port := splitHostPort(e.Host)
	a.PutStr("server.address", host)
	a.PutInt("server.port", int64(port))
	addr, cport := splitHostPort(e.RemoteAddr)
	a.PutStr("client.address", addr)
	a.PutInt("client.port", int64(cport))
	a.PutStr("network.protocol.version", "1.1")
	s.Status().SetCode(ptrace.StatusCodeUnset)
}

func splitHostPort(hp string) (string, int) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return strings.Trim(hp, "[]"), 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// The candidates do the same work: their bytes decode, with the official
// OTLP types, to the same request.
func TestCandidatesAgree(t *testing.T) {
	evs := events()
	var g golensPath
	var p pdataPath
	var a, b collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(g.run(evs), &a); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(p.run(evs), &b); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&a, &b) {
		t.Fatalf("the candidates' requests differ")
	}
	if n := len(a.ResourceSpans); n != 2 {
		t.Fatalf("%d ResourceSpans, want 2", n)
	}
}

// cpuTime is the CPU time the process used so far, user and system, its
// garbage collector's included: what a span costs the node, which wall
// time on a shared machine overstates.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSpanModel is agent CPU per span from a decoded event to OTLP
// protobuf bytes, for each candidate span model: ns/span is wall time,
// cpu-ns/span the process's CPU time (GC included) per span.
func BenchmarkSpanModel(b *testing.B) {
	evs := events()
	for _, c := range []struct {
		name string
		run  func([]*event.HTTPServer) []byte
	}{
		{"golens", new(golensPath).run},
		{"pdata", new(pdataPath).run},
	} {
		b.Run(c.name, func(b *testing.B) {
			var n int
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				n = len(c.run(evs))
			}
			cpu = cpuTime() - cpu
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/span")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*batch), "cpu-ns/span")
			b.ReportMetric(float64(testing.AllocsPerRun(3, func() { c.run(evs) }))/batch, "allocs/span")
			b.ReportMetric(float64(n)/batch, "bytes/span")
		})
	}
}
