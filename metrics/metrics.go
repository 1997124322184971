// Package metrics keeps the go_app_ application metrics and golens' own
// golens_ health metrics on a private registry, and serves them with the
// health endpoints.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/golens/golens/probes/event"
)

// DefaultBuckets are the duration buckets in seconds: exponential from
// 0.5 ms to 10 s.
var DefaultBuckets = roundBuckets(prometheus.ExponentialBucketsRange(0.0005, 10, 16))

// roundBuckets keeps three significant digits, so "le" labels read well.
func roundBuckets(b []float64) []float64 {
	for i, v := range b {
		s := strconv.FormatFloat(v, 'g', 3, 64)
		b[i], _ = strconv.ParseFloat(s, 64)
	}
	return b
}

// Options configure the metrics.
type Options struct {
	Buckets      []float64 // duration buckets in seconds; DefaultBuckets when nil
	RoutesPerSvc int       // distinct route labels per service before "other"
}

// Metrics records application metrics from events. Every event is counted,
// whatever the sampler keeps.
type Metrics struct {
	reg            *prometheus.Registry
	routes         *routeCap
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	clientRequests *prometheus.CounterVec
	clientDuration *prometheus.HistogramVec
}

// New creates the metrics on a fresh registry.
func New(o Options) *Metrics {
	if o.Buckets == nil {
		o.Buckets = DefaultBuckets
	}
	if o.RoutesPerSvc <= 0 {
		o.RoutesPerSvc = 200
	}
	labels := []string{"service_name", "method", "route", "status_code"}
	m := &Metrics{
		reg:    prometheus.NewRegistry(),
		routes: newRouteCap(o.RoutesPerSvc),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "go_app_http_server_requests_total",
			Help: "HTTP requests served by the instrumented Go service.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "go_app_http_server_request_duration_seconds",
			Help:    "Time the instrumented Go service took to serve an HTTP request.",
			Buckets: o.Buckets,
		}, labels),
	}
	clientLabels := []string{"service_name", "method", "server_address", "status_code"}
	m.clientRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "go_app_http_client_requests_total",
		Help: "HTTP requests sent by the instrumented Go service.",
	}, clientLabels)
	m.clientDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "go_app_http_client_request_duration_seconds",
		Help:    "Time HTTP requests sent by the instrumented Go service took, until response headers or error.",
		Buckets: o.Buckets,
	}, clientLabels)
	m.reg.MustRegister(m.requests, m.duration, m.clientRequests, m.clientDuration)
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "golens_route_overflow_total",
		Help: "Requests whose route label was replaced by \"other\" because the service reached its route cap.",
	}, func() float64 { return float64(m.routes.overflowed()) }))
	return m
}

// Registry is where further collectors (golens_ health) register.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Record counts one event.
func (m *Metrics) Record(ev event.Event) {
	switch e := ev.(type) {
	case *event.HTTPServer:
		svc := e.Process.ServiceName
		route := routeLabel(e)
		route = m.routes.label(svc, route)
		lv := []string{svc, event.NormalMethod(e.Method), route, statusLabel(e.Status)}
		m.requests.WithLabelValues(lv...).Inc()
		m.duration.WithLabelValues(lv...).Observe(e.End.Sub(e.Start).Seconds())
	case *event.HTTPClient:
		status := statusLabel(e.Status)
		if e.Err {
			status = "error"
		}
		host, _, err := net.SplitHostPort(e.Host)
		if err != nil {
			host = e.Host
		}
		lv := []string{e.Process.ServiceName, event.NormalMethod(e.Method), host, status}
		m.clientRequests.WithLabelValues(lv...).Inc()
		m.clientDuration.WithLabelValues(lv...).Observe(e.End.Sub(e.Start).Seconds())
	}
}

// statusLabel is the status code, or "unknown" when the probe could not read it.
func statusLabel(code int) string {
	if code == 0 {
		return "unknown"
	}
	return strconv.Itoa(code)
}

// routeLabel prefers the mux pattern's path template over the raw path.
func routeLabel(e *event.HTTPServer) string {
	if r := e.RouteTemplate(); r != "" {
		return r
	}
	return NormalizePath(e.Path)
}

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	srv   *http.Server
	ln    net.Listener
	ready atomic.Bool
}

// Listen binds addr now, so a busy port is reported at start-up.
func (m *Metrics) Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: nil}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready: targets still attaching\n", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// SetReady flips /readyz to 200.
func (s *Server) SetReady() { s.ready.Store(true) }

// Serve runs until ctx is cancelled.
func (s *Server) Serve(ctx context.Context, log *slog.Logger) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.srv.Shutdown(sctx)
	}()
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
