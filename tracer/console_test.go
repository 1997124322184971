package tracer

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestConsoleQuotes(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	span := tracetest.SpanStub{
		Name:        "GET\n/x",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}}),
		SpanKind:    trace.SpanKindServer,
		StartTime:   t0,
		EndTime:     t0.Add(time.Millisecond),
		Attributes: []attribute.KeyValue{
			attribute.String("url.path", "/a\nspan b=c"),
			attribute.Int("n", 3),
			attribute.Bool("ok", true),
			attribute.StringSlice("golens.truncated", []string{"path"}),
			attribute.String("odd key\n", "v"),
		},
		Resource: resource.NewSchemaless(attribute.String("service.name", "s\r\nx")),
	}.Snapshot()
	var out strings.Builder
	if err := NewConsoleExporter(&out).ExportSpans(context.Background(), []sdktrace.ReadOnlySpan{span}); err != nil {
		t.Fatal(err)
	}
	want := `span service="s\r\nx" name="GET\n/x" kind=server trace=01000000000000000000000000000000 span=0200000000000000 duration=1ms status=Unset` +
		` url.path="/a\nspan b=c" n=3 ok=true golens.truncated="[\"path\"]" "odd key\n"="v"` + "\n"
	if out.String() != want {
		t.Errorf("got  %s\nwant %s", out.String(), want)
	}
}
