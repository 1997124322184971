package metrics

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"time"

	prombridge "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/grpc/credentials"
)

// OTLPConfig says where to push metrics over OTLP/gRPC.
type OTLPConfig struct {
	Endpoint string // host:port or URL (http:// means plaintext)
	Insecure bool
	Headers  map[string]string
	// TLS verifies the collector and may carry a client certificate
	// (nil: the host's roots, or plaintext for http:// endpoints).
	TLS         *tls.Config
	Compression string        // "gzip", or "" / "none"
	Interval    time.Duration // between pushes; 15 s when zero
	Version     string        // golens version, for the resource
}

// PushOTLP sends the same metrics /metrics serves to an OTLP/gRPC
// collector every interval, so a Collector pipeline such as
// otlp → prometheusremotewrite receives them. The returned function
// flushes once more and stops.
func (m *Metrics) PushOTLP(ctx context.Context, c OTLPConfig) (func(context.Context) error, error) {
	if c.Endpoint == "" {
		return nil, fmt.Errorf("otlp metrics need an endpoint (--otlp-endpoint)")
	}
	if c.Interval <= 0 {
		c.Interval = 15 * time.Second
	}
	// The same choice as the span exporter's: --otlp-insecure, else the
	// CA file or client certificate given, else an http:// URL means
	// plaintext, else the host's roots.
	var opts []otlpmetricgrpc.Option
	if strings.Contains(c.Endpoint, "://") {
		opts = append(opts, otlpmetricgrpc.WithEndpointURL(c.Endpoint))
	} else {
		opts = append(opts, otlpmetricgrpc.WithEndpoint(c.Endpoint))
	}
	switch {
	case c.Insecure:
		opts = append(opts, otlpmetricgrpc.WithInsecure())
	case c.TLS != nil:
		opts = append(opts, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(c.TLS)))
	case strings.HasPrefix(c.Endpoint, "http://"):
		opts = append(opts, otlpmetricgrpc.WithInsecure())
	}
	switch c.Compression {
	case "", "none":
	case "gzip":
		opts = append(opts, otlpmetricgrpc.WithCompressor("gzip"))
	default:
		return nil, fmt.Errorf("otlp compression %q: want gzip or none", c.Compression)
	}
	if len(c.Headers) > 0 {
		opts = append(opts, otlpmetricgrpc.WithHeaders(c.Headers))
	}
	exp, err := otlpmetricgrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("otlp metric exporter: %w", err)
	}
	// The application metrics carry service_name as a label: one pipeline
	// serves every target, and the resource names golens itself, one
	// instance per node.
	attrs := []attribute.KeyValue{
		attribute.String("service.name", "golens"),
		attribute.String("service.version", c.Version),
	}
	if host, err := os.Hostname(); err == nil {
		attrs = append(attrs, attribute.String("service.instance.id", host), attribute.String("host.name", host))
	}
	res := resource.NewSchemaless(attrs...)
	reader := sdkmetric.NewPeriodicReader(exp,
		sdkmetric.WithInterval(c.Interval),
		sdkmetric.WithProducer(prombridge.NewMetricProducer(prombridge.WithGatherer(m.reg))),
	)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))
	return mp.Shutdown, nil
}
