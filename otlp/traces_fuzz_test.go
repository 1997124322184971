package otlp_test

import (
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/golens/golens/otlp"
	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/span"
)

// encodeCase is what one fuzz input becomes: a span with the given strings
// in every kind of string field the encoder writes, and a plain span of the
// same resource and scope after it.
type encodeCase struct {
	service, scope, name, key, value, status, event string
	n                                               int64
	kind                                            uint8
	ids                                             []byte
}

func (c encodeCase) spans() []*span.Span {
	res := span.NewResource("", attribute.String("service.name", c.service))
	scope := &span.Scope{Name: c.scope}
	var tid span.TraceID
	var sid span.SpanID
	copy(tid[:], c.ids)
	copy(sid[:], c.ids[min(len(c.ids), 16):])
	t0 := time.Unix(1_700_000_000, 5)
	a := &span.Span{
		Name:    c.name,
		TraceID: tid, SpanID: sid, Flags: span.FlagSampled,
		Kind:  span.Kind(c.kind),
		Start: t0,
		End:   t0.Add(time.Duration(c.n&0xffff) * time.Microsecond),
		Attrs: []attribute.KeyValue{
			attribute.String(c.key, c.value),
			attribute.Int64("n", c.n),
			attribute.StringSlice("list", []string{c.value, c.name}),
			attribute.Map("map", attribute.String(c.key, c.value)),
		},
		Status: span.Error, StatusMessage: c.status,
		Resource: res,
		Scope:    scope,
	}
	b := &span.Span{
		Name:    "GET /hello",
		TraceID: span.TraceID{1}, SpanID: span.SpanID{2},
		Kind:     span.KindServer,
		Start:    t0,
		End:      t0.Add(time.Millisecond),
		Attrs:    []attribute.KeyValue{attribute.String("url.path", "/hello")},
		Resource: res,
		Scope:    scope,
	}
	return []*span.Span{a, b}
}

// want is the request the official types must decode: built field by
// field from the case, each string as event.ValidUTF8 makes it.
func (c encodeCase) want() *collectortrace.ExportTraceServiceRequest {
	v := event.ValidUTF8
	var tid, sid [16]byte
	copy(tid[:], c.ids)
	copy(sid[:8], c.ids[min(len(c.ids), 16):])
	kind := tracepb.Span_SpanKind(c.kind)
	if c.kind > uint8(span.KindConsumer) {
		kind = tracepb.Span_SPAN_KIND_UNSPECIFIED
	}
	start := uint64(time.Unix(1_700_000_000, 5).UnixNano())
	ss := &tracepb.ScopeSpans{Spans: []*tracepb.Span{{
		TraceId:           tid[:],
		SpanId:            sid[:8],
		Name:              v(c.name),
		Kind:              kind,
		StartTimeUnixNano: start,
		EndTimeUnixNano:   start + uint64(c.n&0xffff)*1000,
		Attributes: []*commonpb.KeyValue{
			pbKV(v(c.key), pbStr(v(c.value))),
			pbKV("n", pbInt(c.n)),
			pbKV("list", pbArray(pbStr(v(c.value)), pbStr(v(c.name)))),
			pbKV("map", &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{
				Values: []*commonpb.KeyValue{pbKV(v(c.key), pbStr(v(c.value)))}}}}),
		},
		Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: v(c.status)},
		Flags:  0x101,
	}, {
		TraceId:           []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		SpanId:            []byte{2, 0, 0, 0, 0, 0, 0, 0},
		Name:              "GET /hello",
		Kind:              tracepb.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano: start,
		EndTimeUnixNano:   start + uint64(time.Millisecond),
		Attributes:        []*commonpb.KeyValue{pbKV("url.path", pbStr("/hello"))},
		Status:            &tracepb.Status{},
		Flags:             0x100,
	}}}
	if c.scope != "" {
		ss.Scope = &commonpb.InstrumentationScope{Name: v(c.scope)}
	}
	return &collectortrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{pbKV("service.name", pbStr(v(c.service)))}},
		ScopeSpans: []*tracepb.ScopeSpans{ss},
	}}}
}

func checkEncode(t *testing.T, c encodeCase) {
	t.Helper()
	var enc otlp.TraceEncoder
	b := enc.Encode(c.spans())
	got := new(collectortrace.ExportTraceServiceRequest)
	// proto.Unmarshal checks UTF-8 as grpc-go's codec does on a receiver.
	if err := proto.Unmarshal(b, got); err != nil {
		t.Fatalf("generated types cannot decode the request: %v", err)
	}
	requireEqual(t, got, c.want())
	if n := proto.Size(got); n != len(b) {
		t.Errorf("encoded %d bytes, proto.Marshal would write %d", len(b), n)
	}
}

// A string that is not valid UTF-8, in any field, goes out as the
// sanitized string and leaves the rest of the batch intact.
func TestEncodeInvalidUTF8(t *testing.T) {
	for _, c := range encodeSeeds {
		checkEncode(t, c)
	}
}

var encodeSeeds = []encodeCase{
	{service: "checkout", scope: "github.com/golens/golens", name: "GET /items/{id}", key: "url.path", value: "/items/42",
		status: "", event: "exception", n: 200, kind: 2, ids: []byte("0123456789abcdef01234567")},
	{service: "caf\xe9", scope: "sc\xff", name: "GET /\xff\xfe", key: "k\xc3", value: "/echo/caf\xc3",
		status: "boom \xed\xa0\x80", event: "\x80", n: -1, kind: 3, ids: []byte{1}},
	{service: "", scope: "", name: "", key: "", value: "", status: "", event: "", n: 0, kind: 9, ids: nil},
	{service: "s", scope: "x", name: "日本語", key: "€", value: "\U0001F600\xf0\x9f\x98", status: "ok", event: "e", n: 1 << 40, kind: 5,
		ids: []byte("ffffffffffffffffffffffffffffffff")},
}

// FuzzOTLPEncode: whatever the strings, the request decodes with the
// official OTLP types to exactly the spans given, invalid UTF-8 as the
// sanitized string.
func FuzzOTLPEncode(f *testing.F) {
	for _, c := range encodeSeeds {
		f.Add(c.service, c.scope, c.name, c.key, c.value, c.status, c.event, c.n, c.kind, c.ids)
	}
	f.Fuzz(func(t *testing.T, service, scope, name, key, value, status, ev string, n int64, kind uint8, ids []byte) {
		c := encodeCase{service, scope, name, key, value, status, ev, n, kind, ids}
		checkEncode(t, c)
		for _, s := range []string{service, scope, name, key, value, status, ev} {
			if utf8.ValidString(s) && event.ValidUTF8(s) != s {
				t.Fatalf("valid string %q changed", s)
			}
		}
	})
}
