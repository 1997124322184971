package harness

import (
	"context"

	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
)

// metricsService records OTLP metric pushes on the receiver's server.
type metricsService struct {
	collectormetrics.UnimplementedMetricsServiceServer
	r *Receiver
}

// Export implements the OTLP metrics service: it keeps the latest value of
// every sum and gauge data point, and the count of every histogram point,
// by metric name and attributes.
func (m *metricsService) Export(_ context.Context, req *collectormetrics.ExportMetricsServiceRequest) (*collectormetrics.ExportMetricsServiceResponse, error) {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, mt := range sm.Metrics {
				switch d := mt.Data.(type) {
				case *metricspb.Metric_Sum:
					for _, p := range d.Sum.DataPoints {
						m.r.points[pointKey(mt.Name, attrMap(p.Attributes))] = numberValue(p)
					}
				case *metricspb.Metric_Gauge:
					for _, p := range d.Gauge.DataPoints {
						m.r.points[pointKey(mt.Name, attrMap(p.Attributes))] = numberValue(p)
					}
				case *metricspb.Metric_Histogram:
					for _, p := range d.Histogram.DataPoints {
						m.r.points[pointKey(mt.Name+"_count", attrMap(p.Attributes))] = float64(p.Count)
					}
				}
			}
		}
	}
	m.r.metricPushes++
	return &collectormetrics.ExportMetricsServiceResponse{}, nil
}

func numberValue(p *metricspb.NumberDataPoint) float64 {
	if v, ok := p.Value.(*metricspb.NumberDataPoint_AsInt); ok {
		return float64(v.AsInt)
	}
	return p.GetAsDouble()
}

func pointKey(name string, attrs map[string]any) string {
	k := name
	for _, a := range sortedKeys(attrs) {
		k += "|" + a + "=" + toString(attrs[a])
	}
	return k
}

// MetricPoint returns the latest pushed value of metric name with exactly
// these attributes.
func (r *Receiver) MetricPoint(name string, attrs map[string]string) (float64, bool) {
	m := make(map[string]any, len(attrs))
	for k, v := range attrs {
		m[k] = v
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.points[pointKey(name, m)]
	return v, ok
}

// MetricPushes counts OTLP metric exports received.
func (r *Receiver) MetricPushes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.metricPushes
}
