package otlp_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/golens/golens/otlp"
	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/span"
	"github.com/golens/golens/tracer"
)

// Helpers that build the generated OTLP values a test expects.

func pbStr(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}
func pbInt(n int64) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: n}}
}
func pbBool(b bool) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: b}}
}
func pbDouble(f float64) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: f}}
}
func pbArray(vs ...*commonpb.AnyValue) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}}
}
func pbKV(k string, v *commonpb.AnyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: v}
}

// otlpFixture is a batch that exercises what the encoder must get right:
// three resources of which two are equivalent, three scopes (one the zero
// scope), every attribute type, every status, remote and local parents,
// trace state present and absent, and a span and values big enough that
// their length prefixes grow past what was reserved.
type otlpFixture struct {
	spans []*span.Span
	want  *collectortrace.ExportTraceServiceRequest
}

func newOTLPFixture(t testing.TB) otlpFixture {
	t.Helper()
	const schema = "https://opentelemetry.io/schemas/1.26.0"
	resA := span.NewResource("", attribute.String("service.name", "a"), attribute.Int("process.pid", 1))
	resA2 := span.NewResource("", attribute.Int("process.pid", 1), attribute.String("service.name", "a"))
	resB := span.NewResource(schema, attribute.String("service.name", "b"))
	if resA == resA2 {
		t.Fatal("fixture: resA and resA2 must be different pointers")
	}
	scopeG := tracer.Scope
	scopeO := &span.Scope{Name: "other", SchemaURL: "https://example.com/scope/1", Attrs: attribute.NewSet(attribute.String("scope.k", "v"))}

	id := func(b byte) (span.TraceID, span.SpanID) {
		return span.TraceID{b, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 1, 2, 3, 4, 5, 6, 7, 8, b}, span.SpanID{b, 1, 2, 3, 4, 5, 6, b}
	}
	tid1, sid1 := id(1)
	_, psid1 := id(0x11)
	tid2, sid2 := id(2)
	_, psid2 := id(0x12)
	tid3, sid3 := id(3)
	tid4, sid4 := id(4)
	tid5, sid5 := id(5)
	tid6, sid6 := id(6)
	t0 := time.Unix(1_700_000_000, 123_456_789)
	ns := func(d time.Duration) uint64 { return uint64(t0.Add(d).UnixNano()) }

	long := strings.Repeat("x", 200)
	var bigAttrs []attribute.KeyValue
	var bigWant []*commonpb.KeyValue
	for i := range 120 {
		k := fmt.Sprintf("big.%03d", i)
		bigAttrs = append(bigAttrs, attribute.String(k, long))
		bigWant = append(bigWant, pbKV(k, pbStr(long)))
	}

	spans := []*span.Span{
		{ // every attribute type, error, remote parent, trace state
			Name:    "GET /users/{id}",
			TraceID: tid1, SpanID: sid1, Flags: span.FlagSampled, TraceState: "golens=1,vendor=x",
			Parent: psid1, ParentFlags: span.FlagSampled, ParentRemote: true,
			Kind:  span.KindServer,
			Start: t0,
			End:   t0.Add(1500 * time.Microsecond),
			Attrs: []attribute.KeyValue{
				attribute.Bool("b.true", true),
				attribute.Bool("b.false", false),
				attribute.Int64("i.zero", 0),
				attribute.Int64("i.neg", -5),
				attribute.Int64("i.max", math.MaxInt64),
				attribute.Float64("f", 1.5),
				attribute.Float64("f.zero", 0),
				attribute.String("s", "x"),
				attribute.String("s.empty", ""),
				attribute.String("s.long", long),
				attribute.BoolSlice("bs", []bool{true, false}),
				attribute.Int64Slice("is", []int64{1, -2}),
				attribute.Float64Slice("fs", []float64{0.5, -1}),
				attribute.StringSlice("ss", []string{"a", ""}),
				attribute.StringSlice("ss.empty", nil),
				attribute.ByteSlice("by", []byte{0, 1, 2}),
				attribute.Slice("mixed", attribute.StringValue("a"), attribute.Int64Value(1), attribute.BoolValue(false)),
				attribute.Map("m", attribute.String("mk", "mv"), attribute.Int("mi", 2)),
				{Key: "none"},
			},
			Status: span.Error, StatusMessage: "boom",
			Resource: resA,
			Scope:    scopeG,
		},
		{ // local parent, unsampled, ok status
			Name:    "client",
			TraceID: tid2, SpanID: sid2, Parent: psid2,
			Kind:     span.KindClient,
			Start:    t0,
			End:      t0.Add(time.Second),
			Status:   span.OK,
			Resource: resB,
			Scope:    scopeO,
		},
		{ // an equivalent resource, another scope: joins resA's ResourceSpans
			Name:    "internal",
			TraceID: tid3, SpanID: sid3, Flags: span.FlagSampled,
			Kind:     span.KindInternal,
			Start:    t0,
			End:      t0.Add(time.Millisecond),
			Resource: resA2,
			Scope:    scopeO,
		},
		{ // back to resA and golens' scope after other groups
			Name:    "producer",
			TraceID: tid4, SpanID: sid4, Flags: span.FlagSampled,
			Kind:     span.KindProducer,
			Start:    t0,
			End:      t0.Add(2 * time.Millisecond),
			Attrs:    []attribute.KeyValue{attribute.Int("n", 7)},
			Resource: resA,
			Scope:    scopeG,
		},
		{ // the zero scope, no name, unspecified kind, no times
			TraceID: tid5, SpanID: sid5,
			Resource: resB,
		},
		{ // over 16 KiB
			Name:    "big",
			TraceID: tid6, SpanID: sid6, Flags: span.FlagSampled,
			Kind:     span.KindServer,
			Start:    t0,
			End:      t0.Add(time.Millisecond),
			Attrs:    bigAttrs,
			Resource: resA,
			Scope:    scopeG,
		},
	}

	const (
		hasRemote = uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
		isRemote  = uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
		sampled   = uint32(span.FlagSampled)
	)
	s1 := &tracepb.Span{
		TraceId: tid1[:], SpanId: sid1[:], TraceState: "golens=1,vendor=x", ParentSpanId: psid1[:],
		Flags: sampled | hasRemote | isRemote,
		Name:  "GET /users/{id}", Kind: tracepb.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano: ns(0), EndTimeUnixNano: ns(1500 * time.Microsecond),
		Attributes: []*commonpb.KeyValue{
			pbKV("b.true", pbBool(true)),
			pbKV("b.false", pbBool(false)),
			pbKV("i.zero", pbInt(0)),
			pbKV("i.neg", pbInt(-5)),
			pbKV("i.max", pbInt(math.MaxInt64)),
			pbKV("f", pbDouble(1.5)),
			pbKV("f.zero", pbDouble(0)),
			pbKV("s", pbStr("x")),
			pbKV("s.empty", pbStr("")),
			pbKV("s.long", pbStr(long)),
			pbKV("bs", pbArray(pbBool(true), pbBool(false))),
			pbKV("is", pbArray(pbInt(1), pbInt(-2))),
			pbKV("fs", pbArray(pbDouble(0.5), pbDouble(-1))),
			pbKV("ss", pbArray(pbStr("a"), pbStr(""))),
			pbKV("ss.empty", pbArray()),
			pbKV("by", &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0, 1, 2}}}),
			pbKV("mixed", pbArray(pbStr("a"), pbInt(1), pbBool(false))),
			// attribute.Map sorts its keys.
			pbKV("m", &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{
				Values: []*commonpb.KeyValue{pbKV("mi", pbInt(2)), pbKV("mk", pbStr("mv"))}}}}),
			pbKV("none", &commonpb.AnyValue{}),
		},
		Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "boom"},
	}
	s2 := &tracepb.Span{
		TraceId: tid2[:], SpanId: sid2[:], ParentSpanId: psid2[:], Flags: hasRemote,
		Name: "client", Kind: tracepb.Span_SPAN_KIND_CLIENT,
		StartTimeUnixNano: ns(0), EndTimeUnixNano: ns(time.Second),
		Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK},
	}
	s3 := &tracepb.Span{
		TraceId: tid3[:], SpanId: sid3[:], Flags: sampled | hasRemote,
		Name: "internal", Kind: tracepb.Span_SPAN_KIND_INTERNAL,
		StartTimeUnixNano: ns(0), EndTimeUnixNano: ns(time.Millisecond),
		Status: &tracepb.Status{},
	}
	s4 := &tracepb.Span{
		TraceId: tid4[:], SpanId: sid4[:], Flags: sampled | hasRemote,
		Name: "producer", Kind: tracepb.Span_SPAN_KIND_PRODUCER,
		StartTimeUnixNano: ns(0), EndTimeUnixNano: ns(2 * time.Millisecond),
		Attributes: []*commonpb.KeyValue{pbKV("n", pbInt(7))},
		Status:     &tracepb.Status{},
	}
	s5 := &tracepb.Span{TraceId: tid5[:], SpanId: sid5[:], Flags: hasRemote, Status: &tracepb.Status{}}
	s6 := &tracepb.Span{
		TraceId: tid6[:], SpanId: sid6[:], Flags: sampled | hasRemote,
		Name: "big", Kind: tracepb.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano: ns(0), EndTimeUnixNano: ns(time.Millisecond),
		Attributes: bigWant,
		Status:     &tracepb.Status{},
	}
	golensScope := &commonpb.InstrumentationScope{Name: tracer.Scope.Name, Version: tracer.Scope.Version}
	otherScope := &commonpb.InstrumentationScope{Name: "other", Attributes: []*commonpb.KeyValue{pbKV("scope.k", pbStr("v"))}}
	want := &collectortrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{
			// NewResource sorts attributes by key.
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
				pbKV("process.pid", pbInt(1)), pbKV("service.name", pbStr("a"))}},
			ScopeSpans: []*tracepb.ScopeSpans{
				{Scope: golensScope, Spans: []*tracepb.Span{s1, s4, s6}},
				{Scope: otherScope, Spans: []*tracepb.Span{s3}, SchemaUrl: "https://example.com/scope/1"},
			},
		},
		{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{pbKV("service.name", pbStr("b"))}},
			ScopeSpans: []*tracepb.ScopeSpans{
				{Scope: otherScope, Spans: []*tracepb.Span{s2}, SchemaUrl: "https://example.com/scope/1"},
				{Spans: []*tracepb.Span{s5}},
			},
			SchemaUrl: schema,
		},
	}}
	return otlpFixture{spans: spans, want: want}
}

func decodeRequest(t *testing.T, b []byte) *collectortrace.ExportTraceServiceRequest {
	t.Helper()
	got := new(collectortrace.ExportTraceServiceRequest)
	if err := proto.Unmarshal(b, got); err != nil {
		t.Fatalf("generated types cannot decode the request: %v", err)
	}
	return got
}

func requireEqual(t *testing.T, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("request differs\n--- got:\n%s\n--- want:\n%s", prototext.Format(got), prototext.Format(want))
	}
}

func TestEncodeSpans(t *testing.T) {
	f := newOTLPFixture(t)
	var enc otlp.TraceEncoder
	b := enc.Encode(f.spans)
	got := decodeRequest(t, b)
	requireEqual(t, got, f.want)

	// The same bytes the generated code writes, up to field order: sizes
	// agree, so no length prefix is longer than it needs to be.
	if n := proto.Size(f.want); len(b) != n {
		t.Errorf("encoded %d bytes, proto.Marshal would write %d", len(b), n)
	}

	// Reused for a different batch, then the first again: nothing of a
	// previous batch leaks into the next.
	requireEqual(t, decodeRequest(t, enc.Encode(f.spans[4:5])), &collectortrace.ExportTraceServiceRequest{
		ResourceSpans: []*tracepb.ResourceSpans{{
			Resource:   f.want.ResourceSpans[1].Resource,
			ScopeSpans: []*tracepb.ScopeSpans{f.want.ResourceSpans[1].ScopeSpans[1]},
			SchemaUrl:  f.want.ResourceSpans[1].SchemaUrl,
		}},
	})
	requireEqual(t, decodeRequest(t, enc.Encode(f.spans)), f.want)
}

// Large batches: the ResourceSpans and ScopeSpans prefixes of more than a
// few spans and the interleaving of many groups.
func TestEncodeManyGroups(t *testing.T) {
	var res []*span.Resource
	for i := range 5 {
		res = append(res, span.NewResource("", attribute.Int("process.pid", i)))
	}
	scopes := []*span.Scope{{Name: "s0"}, {Name: "s1", Version: "1"}, {Name: "s2"}}
	var spans []*span.Span
	count := make(map[[2]int]int)
	for i := range 2000 {
		r, s := (i*7)%len(res), (i/3)%len(scopes)
		count[[2]int{r, s}]++
		spans = append(spans, &span.Span{
			Name:    fmt.Sprint(i),
			TraceID: span.TraceID{1}, SpanID: span.SpanID{byte(i), byte(i >> 8)},
			Attrs:    []attribute.KeyValue{attribute.Int("i", i)},
			Resource: res[r],
			Scope:    scopes[s],
		})
	}
	var enc otlp.TraceEncoder
	got := decodeRequest(t, enc.Encode(spans))
	if len(got.ResourceSpans) != len(res) {
		t.Fatalf("%d ResourceSpans, want %d", len(got.ResourceSpans), len(res))
	}
	for _, rs := range got.ResourceSpans {
		r := int(rs.Resource.Attributes[0].Value.GetIntValue())
		for _, ss := range rs.ScopeSpans {
			s := slices.IndexFunc(scopes, func(sc *span.Scope) bool { return sc.Name == ss.Scope.GetName() })
			if n := count[[2]int{r, s}]; len(ss.Spans) != n {
				t.Errorf("resource %d scope %d: %d spans, want %d", r, s, len(ss.Spans), n)
			}
			delete(count, [2]int{r, s})
			last := -1
			for _, sp := range ss.Spans {
				var i int
				fmt.Sscan(sp.Name, &i)
				if i <= last {
					t.Fatalf("resource %d scope %d: span %d after %d, want batch order", r, s, i, last)
				}
				last = i
				if ri := (i * 7) % len(res); ri != r {
					t.Fatalf("span %d under resource %d, want %d", i, r, ri)
				}
			}
		}
	}
	if len(count) != 0 {
		t.Errorf("groups missing from the request: %v", count)
	}
}

// uploadCapture is an otlptrace.Client that keeps what otlptrace's own
// transform produced: the exporter golens used before.
type uploadCapture struct{ got []*tracepb.ResourceSpans }

func (*uploadCapture) Start(context.Context) error { return nil }
func (*uploadCapture) Stop(context.Context) error  { return nil }
func (c *uploadCapture) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	c.got = rs
	return nil
}

// readOnly turns golens' spans into the SDK's, through the SDK's own test
// helper, for the exporter golens used before to transform.
func readOnly(spans []*span.Span) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		var res *resource.Resource
		if s.Resource != nil {
			res = resource.NewWithAttributes(s.Resource.SchemaURL, s.Resource.Attrs.ToSlice()...)
		}
		var scope instrumentation.Scope
		if s.Scope != nil {
			scope = instrumentation.Scope{Name: s.Scope.Name, Version: s.Scope.Version, SchemaURL: s.Scope.SchemaURL, Attributes: s.Scope.Attrs}
		}
		var parent trace.SpanContext
		if s.HasParent() {
			parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID(s.TraceID), SpanID: trace.SpanID(s.Parent),
				TraceFlags: trace.TraceFlags(s.ParentFlags), Remote: s.ParentRemote})
		}
		ts, err := trace.ParseTraceState(s.TraceState)
		if err != nil {
			panic(err)
		}
		out = append(out, tracetest.SpanStub{
			Name: s.Name,
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID(s.TraceID), SpanID: trace.SpanID(s.SpanID),
				TraceFlags: trace.TraceFlags(s.Flags), TraceState: ts}),
			Parent:               parent,
			SpanKind:             trace.SpanKind(s.Kind),
			StartTime:            s.Start,
			EndTime:              s.End,
			Attributes:           s.Attrs,
			Status:               sdktrace.Status{Code: codes.Code([]codes.Code{codes.Unset, codes.Ok, codes.Error}[s.Status]), Description: s.StatusMessage},
			Resource:             res,
			InstrumentationScope: scope,
		}.Snapshot())
	}
	return out
}

// The request says what the otlptrace exporter said for the same spans,
// save the order of ResourceSpans (otlptrace ranges over a map).
func TestEncodeMatchesOTLPTrace(t *testing.T) {
	f := newOTLPFixture(t)
	capture := new(uploadCapture)
	old, err := otlptrace.New(context.Background(), capture)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.ExportSpans(context.Background(), readOnly(f.spans)); err != nil {
		t.Fatal(err)
	}
	var enc otlp.TraceEncoder
	got := decodeRequest(t, enc.Encode(f.spans))
	want := &collectortrace.ExportTraceServiceRequest{ResourceSpans: capture.got}
	byResource := func(a, b *tracepb.ResourceSpans) int {
		return strings.Compare(prototext.Format(a.Resource), prototext.Format(b.Resource))
	}
	slices.SortFunc(got.ResourceSpans, byResource)
	slices.SortFunc(want.ResourceSpans, byResource)
	requireEqual(t, got, want)
}

// benchSpans are n spans as the agent makes them: HTTP server spans of two
// services.
func benchSpans(n int) []*span.Span {
	procs := []*event.Process{
		{PID: 1, ServiceName: "frontend", ExeName: "frontend", ExePath: "/usr/bin/frontend", GoVersion: "go1.26.0"},
		{PID: 2, ServiceName: "backend", ExeName: "backend", ExePath: "/usr/bin/backend", GoVersion: "go1.26.0"},
	}
	res := []*span.Resource{tracer.ProcessResource(procs[0], "node-1"), tracer.ProcessResource(procs[1], "node-1")}
	now := time.Now()
	spans := make([]*span.Span, 0, n)
	for i := range n {
		p := i % 2
		e := &event.HTTPServer{Process: procs[p], Start: now, End: now.Add(time.Millisecond), Method: "GET", Path: "/hello/42",
			Route: "/hello/{id}", Host: "127.0.0.1:8080", RemoteAddr: "127.0.0.1:5555", Status: 200, ProtoMajor: 1, ProtoMinor: 1,
			SpanContext: event.SpanContext{TraceID: event.TraceID{byte(i), byte(i >> 8), 1}, SpanID: event.SpanID{byte(i), 2}, Parent: event.SpanID{byte(i), 3}}}
		s := e.Span()
		s.Resource, s.Scope = res[p], tracer.Scope
		spans = append(spans, &s)
	}
	return spans
}

// discardUpload measures otlptrace's path up to the wire: transform to the
// generated structs, then size and marshal them as gRPC's proto codec does.
type discardUpload struct{ buf []byte }

func (*discardUpload) Start(context.Context) error { return nil }
func (*discardUpload) Stop(context.Context) error  { return nil }
func (d *discardUpload) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	req := &collectortrace.ExportTraceServiceRequest{ResourceSpans: rs}
	var err error
	d.buf, err = proto.MarshalOptions{}.MarshalAppend(d.buf[:0], req)
	return err
}

// BenchmarkOTLPEncode compares turning a 512-span batch into request bytes:
// golens' encoder against otlptrace's transform and proto.Marshal.
func BenchmarkOTLPEncode(b *testing.B) {
	const batch = 512
	spans := benchSpans(batch)
	perSpan := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/span")
	}
	b.Run("golens", func(b *testing.B) {
		var enc otlp.TraceEncoder
		var n int
		b.ReportAllocs()
		for b.Loop() {
			n = len(enc.Encode(spans))
		}
		perSpan(b)
		b.ReportMetric(float64(n)/batch, "bytes/span")
	})
	b.Run("otlptrace", func(b *testing.B) {
		up := new(discardUpload)
		exp, err := otlptrace.New(context.Background(), up)
		if err != nil {
			b.Fatal(err)
		}
		sdkSpans := readOnly(spans)
		b.ReportAllocs()
		for b.Loop() {
			if err := exp.ExportSpans(context.Background(), sdkSpans); err != nil {
				b.Fatal(err)
			}
		}
		perSpan(b)
		b.ReportMetric(float64(len(up.buf))/batch, "bytes/span")
	})
}
