package metrics

import (
	"context"
	"fmt"
	"os"
	"time"

	prombridge "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/grpc/credentials"

	"github.com/golens/golens/otlp"
)

// OTLPConfig says where to push metrics over OTLP/gRPC.
type OTLPConfig struct {
	Target      string                           // gRPC target, host:port (otlp.Connection)
	Credentials credentials.TransportCredentials // plaintext or TLS (otlp.Connection)
	Headers     map[string]string
	Compression string        // "gzip", or "" / "none"
	Interval    time.Duration // between pushes; 15 s when zero
	Version     string        // golens version, for the resource
}

// PushOTLP sends the same metrics /metrics serves to an OTLP/gRPC
// collector every interval, so a Collector pipeline such as
// otlp → prometheusremotewrite receives them. The returned function
// flushes once more and stops.
func (m *Metrics) PushOTLP(ctx context.Context, c OTLPConfig) (func(context.Context) error, error) {
	if c.Target == "" || c.Credentials == nil {
		return nil, fmt.Errorf("otlp metrics need a collector (--otlp-endpoint)")
	}
	if c.Interval <= 0 {
		c.Interval = 15 * time.Second
	}
	// Reached as the span exporter reaches it: the same target and
	// credentials.
	opts := []otlpmetricgrpc.Option{
		otlpmetricgrpc.WithEndpoint(c.Target),
		otlpmetricgrpc.WithTLSCredentials(c.Credentials),
	}
	compressor, err := otlp.Compressor(c.Compression)
	if err != nil {
		return nil, err
	}
	if compressor != "" {
		opts = append(opts, otlpmetricgrpc.WithCompressor(compressor))
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
