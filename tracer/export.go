package tracer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

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

// ClientTLS is the TLS configuration of a connection to a collector: the
// CAs of caFile (none: the host's roots) and, for a collector that requires
// one, the client certificate of certFile and keyFile. It is nil when none
// of them is set.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("otlp client certificate: need both the certificate and its key")
	}
	if caFile == "" && certFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("otlp client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// NewExporter builds the exporter the config asks for. The OTLP exporter
// connects lazily: an unreachable collector is reported per export, never
// at start-up, so the agent keeps serving metrics meanwhile.
func NewExporter(_ context.Context, c ExportConfig, console io.Writer) (sdktrace.SpanExporter, error) {
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

// ConsoleExporter prints one line per span: what `make demo` shows.
type ConsoleExporter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewConsoleExporter writes spans to w.
func NewConsoleExporter(w io.Writer) *ConsoleExporter { return &ConsoleExporter{w: w} }

// ExportSpans implements sdktrace.SpanExporter.
func (c *ConsoleExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range spans {
		svc := ""
		for _, kv := range s.Resource().Attributes() {
			if kv.Key == "service.name" {
				svc = kv.Value.AsString()
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "span service=%s name=%q kind=%s trace=%s span=%s", svc, s.Name(), s.SpanKind(), s.SpanContext().TraceID(), s.SpanContext().SpanID())
		if s.Parent().IsValid() {
			fmt.Fprintf(&b, " parent=%s", s.Parent().SpanID())
		}
		fmt.Fprintf(&b, " duration=%s status=%s", s.EndTime().Sub(s.StartTime()).Round(time.Microsecond), s.Status().Code)
		for _, kv := range s.Attributes() {
			fmt.Fprintf(&b, " %s=%s", kv.Key, kv.Value.Emit())
		}
		fmt.Fprintln(c.w, b.String())
	}
	return nil
}

// Shutdown implements sdktrace.SpanExporter.
func (c *ConsoleExporter) Shutdown(context.Context) error { return nil }
