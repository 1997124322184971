package tracer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golens/golens/span"
	"go.opentelemetry.io/otel/attribute"
)

func TestConsoleQuotes(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	s := &span.Span{
		Name:    "GET\n/x",
		TraceID: span.TraceID{1}, SpanID: span.SpanID{2},
		Kind:  span.KindServer,
		Start: t0,
		End:   t0.Add(time.Millisecond),
		Attrs: []attribute.KeyValue{
			attribute.String("url.path", "/a\nspan b=c"),
			attribute.Int("n", 3),
			attribute.Bool("ok", true),
			attribute.StringSlice("golens.truncated", []string{"path"}),
			attribute.String("odd key\n", "v"),
		},
		Resource: span.NewResource("", attribute.String("service.name", "s\r\nx")),
	}
	var out strings.Builder
	if err := NewConsoleExporter(&out).ExportSpans(context.Background(), []*span.Span{s}); err != nil {
		t.Fatal(err)
	}
	want := `span service="s\r\nx" name="GET\n/x" kind=server trace=01000000000000000000000000000000 span=0200000000000000 duration=1ms status=Unset` +
		` url.path="/a\nspan b=c" n=3 ok=true golens.truncated="[\"path\"]" "odd key\n"="v"` + "\n"
	if out.String() != want {
		t.Errorf("got  %s\nwant %s", out.String(), want)
	}
}
