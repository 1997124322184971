package tracer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/golens/golens/span"
)

// Exporter sends batches of finished spans. The tracer calls ExportSpans
// from one goroutine; the slice is reused once it returns, the spans are
// not.
type Exporter interface {
	ExportSpans(ctx context.Context, spans []*span.Span) error
	Shutdown(ctx context.Context) error
}

// ExportConfig selects and configures the span exporter.
type ExportConfig struct {
	Exporter string // "otlp" or "console"
	Endpoint string // host:port, or a URL (http:// means insecure)
	Insecure bool   // plaintext gRPC
	CAFile   string // PEM roots to verify the collector
	// ClientCert and ClientKey are PEM files of the certificate golens
	// presents to a collector that asks for one (mutual TLS).
	ClientCert, ClientKey string
	Headers               map[string]string // e.g. authentication
	Timeout               time.Duration
	Compression           string // "gzip", or "" / "none"
	// Log receives the collector's warnings; nil is slog.Default().
	Log *slog.Logger
}

// NewExporter builds the exporter the config asks for. The OTLP exporter
// connects lazily: an unreachable collector is reported per export, never
// at start-up, so the agent keeps serving metrics meanwhile.
func NewExporter(_ context.Context, c ExportConfig, console io.Writer) (Exporter, error) {
	switch c.Exporter {
	case "console":
		return NewConsoleExporter(console), nil
	case "otlp":
	default:
		return nil, fmt.Errorf("unknown exporter %q (want otlp or console)", c.Exporter)
	}
	if c.Endpoint == "" {
		return nil, fmt.Errorf("otlp exporter needs an endpoint (--otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT)")
	}
	exp, err := newOTLPExporter(c)
	if err != nil {
		return nil, err
	}
	return exp, nil
}

// ConsoleExporter prints one line per span: what `make demo` shows. Every
// value that may hold a target's bytes is quoted (strconv.Quote), so a path
// with an encoded newline stays on its span's line and cannot forge another.
type ConsoleExporter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewConsoleExporter writes spans to w.
func NewConsoleExporter(w io.Writer) *ConsoleExporter { return &ConsoleExporter{w: w} }

// ExportSpans implements Exporter.
func (c *ConsoleExporter) ExportSpans(_ context.Context, spans []*span.Span) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b []byte
	for _, s := range spans {
		svc := ""
		if s.Resource != nil {
			svc = s.Resource.Service
		}
		b = append(b, "span service="...)
		b = strconv.AppendQuote(b, svc)
		b = append(b, " name="...)
		b = strconv.AppendQuote(b, s.Name)
		b = fmt.Appendf(b, " kind=%s trace=%s span=%s", s.Kind, s.TraceID, s.SpanID)
		if s.HasParent() {
			b = fmt.Appendf(b, " parent=%s", s.Parent)
		}
		b = fmt.Appendf(b, " duration=%s status=%s", s.Duration().Round(time.Microsecond), s.Status)
		for _, kv := range s.Attributes() {
			b = append(b, ' ')
			b = appendConsoleKey(b, string(kv.Key))
			b = append(b, '=')
			b = appendConsoleValue(b, kv.Value)
		}
		b = append(b, '\n')
	}
	_, err := c.w.Write(b)
	return err
}

// appendConsoleKey writes an attribute key bare when it is made of the
// characters semantic convention names use, quoted otherwise.
func appendConsoleKey(b []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return strconv.AppendQuote(b, k)
		}
	}
	if k == "" {
		return append(b, `""`...)
	}
	return append(b, k...)
}

// appendConsoleValue writes numbers and booleans as they are, strings
// quoted, and anything else (slices, maps) as its quoted text.
func appendConsoleValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL, attribute.INT64, attribute.FLOAT64:
		return append(b, v.Emit()...)
	case attribute.STRING:
		return strconv.AppendQuote(b, v.AsString())
	}
	return strconv.AppendQuote(b, v.Emit())
}

// Shutdown implements Exporter.
func (c *ConsoleExporter) Shutdown(context.Context) error { return nil }
