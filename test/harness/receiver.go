// Package harness runs the real pieces end-to-end tests and the benchmark
// need: target programs built from test/apps, the golens binary, and an
// OTLP/gRPC receiver that records what golens exports.
package harness

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // golens may compress its exports
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
)

// Span is one received span, flattened for assertions.
type Span struct {
	TraceID, SpanID, ParentSpanID string // lowercase hex; parent empty for roots
	Name                          string
	Kind                          tracepb.Span_SpanKind
	Start, End                    time.Time
	StatusCode                    tracepb.Status_StatusCode
	Attrs                         map[string]any
	Resource                      map[string]any
	Scope                         string
	TraceState                    string
}

// Duration is End minus Start.
func (s Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Receiver is a real OTLP/gRPC trace receiver on loopback.
type Receiver struct {
	collectortrace.UnimplementedTraceServiceServer
	srv *grpc.Server
	ln  net.Listener

	mu           sync.Mutex
	spans        []Span
	exports      []Export
	changed      chan struct{}
	points       map[string]float64 // metric data points by name and attributes
	metricPushes int
	delay        time.Duration // before answering an export
	calls        int           // trace exports started
}

// SetDelay makes every later trace export wait d before it is accepted: a
// slow collector. An export whose caller gives up first is not accepted.
func (r *Receiver) SetDelay(d time.Duration) {
	r.mu.Lock()
	r.delay = d
	r.mu.Unlock()
}

// Calls is the number of trace exports started, accepted or not.
func (r *Receiver) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// NewReceiver listens on 127.0.0.1 on a free port, in plaintext.
func NewReceiver() (*Receiver, error) { return NewReceiverWith(ReceiverOptions{}) }

// ReceiverOptions shape what the receiver demands of its clients.
type ReceiverOptions struct {
	TLS  *tls.Config // serve TLS; with ClientAuth set, mutual TLS
	Addr string      // where to listen; empty for a free loopback port
}

// Export is what one trace export call brought besides its spans.
type Export struct {
	Spans       int
	Headers     metadata.MD // the request's headers, as the server saw them
	Compression string      // grpc-encoding of the request ("" for none)
	WireBytes   int         // the request's size on the wire
	Bytes       int         // and decompressed
}

// NewReceiverWith listens on 127.0.0.1 on a free port with o.
func NewReceiverWith(o ReceiverOptions) (*Receiver, error) {
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &Receiver{ln: ln, changed: make(chan struct{}), points: make(map[string]float64)}
	opts := []grpc.ServerOption{grpc.StatsHandler(wireStats{r})}
	if o.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(o.TLS)))
	}
	r.srv = grpc.NewServer(opts...)
	collectortrace.RegisterTraceServiceServer(r.srv, r)
	collectormetrics.RegisterMetricsServiceServer(r.srv, &metricsService{r: r})
	go r.srv.Serve(ln)
	return r, nil
}

// Exports returns what each trace export call so far brought.
func (r *Receiver) Exports() []Export {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Export(nil), r.exports...)
}

// wireStats notes each trace export's encoding and sizes on the wire, which
// the service handler does not see.
type wireStats struct{ r *Receiver }

type wireKey struct{}

type wireInfo struct {
	method      string
	compression string
	wire, size  int
}

func (wireStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, wireKey{}, &wireInfo{method: info.FullMethodName})
}

func (wireStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	w, _ := ctx.Value(wireKey{}).(*wireInfo)
	if w == nil {
		return
	}
	switch s := s.(type) {
	case *stats.InHeader:
		w.compression = s.Compression
	case *stats.InPayload:
		w.wire, w.size = s.WireLength, s.Length
	}
}

func (wireStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (wireStats) HandleConn(context.Context, stats.ConnStats)                       {}

// Addr is host:port to give golens as --otlp-endpoint.
func (r *Receiver) Addr() string { return r.ln.Addr().String() }

// Close stops the server.
func (r *Receiver) Close() { r.srv.Stop() }

// Export implements the OTLP trace service.
func (r *Receiver) Export(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	r.calls++
	delay := r.delay
	r.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var got []Span
	for _, rs := range req.ResourceSpans {
		res := attrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				sp := Span{
					TraceID:    hex.EncodeToString(s.TraceId),
					SpanID:     hex.EncodeToString(s.SpanId),
					Name:       s.Name,
					Kind:       s.Kind,
					Start:      time.Unix(0, int64(s.StartTimeUnixNano)),
					End:        time.Unix(0, int64(s.EndTimeUnixNano)),
					StatusCode: s.GetStatus().GetCode(),
					Attrs:      attrMap(s.Attributes),
					Resource:   res,
					Scope:      ss.GetScope().GetName(),
					TraceState: s.TraceState,
				}
				if len(s.ParentSpanId) > 0 {
					sp.ParentSpanID = hex.EncodeToString(s.ParentSpanId)
				}
				got = append(got, sp)
			}
		}
	}
	ex := Export{Spans: len(got)}
	ex.Headers, _ = metadata.FromIncomingContext(ctx)
	// The payload is read before the handler runs, so its sizes are known.
	if w, _ := ctx.Value(wireKey{}).(*wireInfo); w != nil {
		ex.Compression, ex.WireBytes, ex.Bytes = w.compression, w.wire, w.size
	}
	r.mu.Lock()
	r.exports = append(r.exports, ex)
	r.spans = append(r.spans, got...)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// Spans returns a copy of everything received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// WaitFor waits until at least n spans arrived, or timeout.
func (r *Receiver) WaitFor(n int, timeout time.Duration) ([]Span, error) {
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		have, ch := len(r.spans), r.changed
		r.mu.Unlock()
		if have >= n {
			return r.Spans(), nil
		}
		select {
		case <-ch:
		case <-deadline:
			return r.Spans(), fmt.Errorf("received %d spans, want %d", have, n)
		}
	}
}

// Count is how many spans arrived so far.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spans)
}

// WaitCount is WaitFor answering how many spans arrived.
func (r *Receiver) WaitCount(n int, timeout time.Duration) (int, error) {
	got, err := r.WaitFor(n, timeout)
	return len(got), err
}

func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = anyValue(kv.Value)
	}
	return m
}

func anyValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range x.ArrayValue.Values {
			out = append(out, anyValue(e))
		}
		return out
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func toString(v any) string { return fmt.Sprint(v) }
