// Package metrics keeps the go_app_ application metrics and golens' own
// golens_ health metrics on a private registry, and serves them with the
// health endpoints.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
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

// PauseBuckets are the buckets of stop-the-world pauses in seconds:
// exponential from 5 µs to 1 s, since pauses are far shorter than requests.
var PauseBuckets = roundBuckets(prometheus.ExponentialBucketsRange(0.000005, 1, 18))

// Options configure the metrics.
type Options struct {
	Buckets      []float64 // request duration buckets in seconds; DefaultBuckets when nil
	RoutesPerSvc int       // distinct route labels per service before "other"; default 200
	// GRPCMethodsPerSvc caps the distinct gRPC methods (grpc_service and
	// grpc_method together) per service, server and client side each
	// counted, before both labels read "other"; default 200.
	GRPCMethodsPerSvc int
	// AddressesPerSvc caps the distinct server_address values of a
	// service's HTTP client metrics before "other"; default 200.
	AddressesPerSvc int
	IdleTTL         time.Duration // a label set not updated for this long is removed; default 10 min
	// Log receives at most one line per 10 s about events the metrics
	// could not count; slog.Default() when nil.
	Log *slog.Logger
	// ResourceLabels are resource attributes of the target (e.g.
	// k8s.namespace.name) added as labels to every go_app_ metric, named
	// with underscores for dots (k8s_namespace_name); a target without the
	// attribute has the label empty. Each must stay bounded.
	ResourceLabels []string
}

// ResourceLabelName is the Prometheus label name of a resource attribute:
// k8s.namespace.name → k8s_namespace_name.
func ResourceLabelName(attr string) string { return strings.ReplaceAll(attr, ".", "_") }

// Metrics records application metrics from events. Every event is counted,
// whatever the sampler keeps.
type Metrics struct {
	reg *prometheus.Registry
	// The labels whose values come from traffic, each capped per service.
	routes, grpcMethods, addresses *labelCap
	ttl                            time.Duration
	extra                          []string // Options.ResourceLabels

	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	clientRequests *prometheus.CounterVec
	clientDuration *prometheus.HistogramVec
	gcCycles       *prometheus.CounterVec
	gcPause        *prometheus.HistogramVec
	heapLive       *prometheus.GaugeVec
	goroutines     *prometheus.CounterVec
	grpcHandled    [2]*prometheus.CounterVec   // [0] server, [1] client
	grpcHandling   [2]*prometheus.HistogramVec // [0] server, [1] client

	log        *slog.Logger
	failed     *prometheus.CounterVec // events not counted, by reason
	lastErrLog atomic.Int64           // unix seconds of the last line logged about one

	mu      sync.Mutex
	seen    map[*prometheus.MetricVec]map[string]*series
	goidgen map[string]uint64 // label set (joined) -> last goroutine id counter seen
	expired uint64
	// pairs holds, per counter vector, the counter and histogram children
	// of each label set count has seen, so that a repeated label set costs
	// one map lookup instead of two label-value lookups (each hashing and
	// validating every value) and two joined keys. Expire empties it
	// whenever it deletes a series. Guarded by mu.
	pairs  map[*prometheus.CounterVec]map[string]*pair
	keyBuf []byte // count's joined label values, reused; guarded by mu
}

// series is one label set of a vector and when it was last updated.
type series struct {
	labels []string
	last   time.Time
}

// pair is one label set's counter and histogram, and their series.
type pair struct {
	cnt        prometheus.Counter
	obs        prometheus.Observer
	cnts, obss *series
}

// New creates the metrics on a fresh registry.
func New(o Options) *Metrics {
	if o.Buckets == nil {
		o.Buckets = DefaultBuckets
	}
	for _, n := range []*int{&o.RoutesPerSvc, &o.GRPCMethodsPerSvc, &o.AddressesPerSvc} {
		if *n <= 0 {
			*n = 200
		}
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if err := CheckBuckets(o.Buckets); err != nil {
		// Callers check the configuration first; failing here beats a
		// panic at each event's first observation of a new label set.
		panic(err)
	}
	withResource := func(names ...string) []string {
		for _, a := range o.ResourceLabels {
			names = append(names, ResourceLabelName(a))
		}
		return names
	}
	server := withResource("service_name", "method", "route", "status_code")
	client := withResource("service_name", "method", "server_address", "status_code")
	svc := withResource("service_name")
	m := &Metrics{
		reg:         prometheus.NewRegistry(),
		routes:      newLabelCap(o.RoutesPerSvc),
		grpcMethods: newLabelCap(o.GRPCMethodsPerSvc),
		addresses:   newLabelCap(o.AddressesPerSvc),
		ttl:         o.IdleTTL,
		extra:       o.ResourceLabels,
		log:         o.Log,
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "golens_metrics_record_failed_total",
			Help: "Events the go_app_ metrics could not count, by reason; their spans are unaffected.",
		}, []string{"reason"}),
		seen:    make(map[*prometheus.MetricVec]map[string]*series),
		goidgen: make(map[string]uint64),
		pairs:   make(map[*prometheus.CounterVec]map[string]*pair),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "go_app_http_server_requests_total",
			Help: "HTTP requests served by the instrumented Go service.",
		}, server),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "go_app_http_server_request_duration_seconds",
			Help:    "Time the instrumented Go service took to serve an HTTP request.",
			Buckets: o.Buckets,
		}, server),
		clientRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "go_app_http_client_requests_total",
			Help: "HTTP requests sent by the instrumented Go service.",
		}, client),
		clientDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "go_app_http_client_request_duration_seconds",
			Help:    "Time HTTP requests sent by the instrumented Go service took, until response headers or error.",
			Buckets: o.Buckets,
		}, client),
		gcCycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "go_app_gc_cycles_total",
			Help: "Garbage collection cycles completed by the instrumented Go service.",
		}, svc),
		gcPause: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "go_app_gc_pause_seconds",
			Help:    "Stop-the-world pauses of the garbage collector (two per cycle).",
			Buckets: PauseBuckets,
		}, svc),
		heapLive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "go_app_gc_heap_live_bytes",
			Help: "Heap marked live by the last completed GC cycle (needs the binary's symbol table).",
		}, svc),
		goroutines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "go_app_goroutines_created_total",
			Help: "Goroutines created by the instrumented Go service since golens attached, sampled at each GC pause from the runtime's goroutine id counter, which hands each P 16 ids at a time (needs the binary's symbol table).",
		}, svc),
	}
	grpcLabels := withResource("service_name", "grpc_service", "grpc_method", "grpc_code")
	for i, side := range []string{"server", "client"} {
		verb := map[string]string{"server": "handled by", "client": "made by"}[side]
		m.grpcHandled[i] = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "go_app_grpc_" + side + "_handled_total",
			Help: "gRPC calls " + verb + " the instrumented Go service, by final status code.",
		}, grpcLabels)
		m.grpcHandling[i] = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "go_app_grpc_" + side + "_handling_seconds",
			Help:    "Duration of gRPC calls " + verb + " the instrumented Go service.",
			Buckets: o.Buckets,
		}, grpcLabels)
		m.reg.MustRegister(m.grpcHandled[i], m.grpcHandling[i])
	}
	m.reg.MustRegister(m.requests, m.duration, m.clientRequests, m.clientDuration, m.gcCycles, m.gcPause, m.heapLive, m.goroutines)
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "golens_route_overflow_total",
		Help: "Requests whose route label was replaced by \"other\" because the service reached its route cap.",
	}, func() float64 { return float64(m.routes.overflowed()) }))
	m.reg.MustRegister(&overflowCollector{m.routes, m.grpcMethods, m.addresses})
	m.reg.MustRegister(m.failed)
	for _, reason := range failReasonNames {
		m.failed.WithLabelValues(reason) // present at 0 from the start
	}
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "golens_series_expired_total",
		Help: "Application metric series removed after staying idle for the idle TTL.",
	}, func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		return float64(m.expired)
	}))
	return m
}

// CheckBuckets tells whether b are usable duration buckets: numbers of
// seconds, not negative, strictly increasing (a last +Inf is allowed; it is
// implicit anyway). nil is the default.
func CheckBuckets(b []float64) error {
	for i, v := range b {
		switch {
		case math.IsNaN(v):
			return fmt.Errorf("duration bucket %v: want a number of seconds", v)
		case v < 0:
			return fmt.Errorf("duration bucket %v: a duration is not negative", v)
		case i > 0 && v <= b[i-1]:
			return fmt.Errorf("duration buckets %v: must be strictly increasing (%v after %v)", b, v, b[i-1])
		}
	}
	return nil
}

// overflowCollector exports golens_label_overflow_total{label}.
type overflowCollector struct{ routes, grpcMethods, addresses *labelCap }

var descLabelOverflow = prometheus.NewDesc("golens_label_overflow_total",
	"Events whose label value was replaced by \"other\" because the service reached that label's cap.", []string{"label"}, nil)

func (c *overflowCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descLabelOverflow }

func (c *overflowCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range []struct {
		name string
		c    *labelCap
	}{{"route", c.routes}, {"grpc_method", c.grpcMethods}, {"server_address", c.addresses}} {
		ch <- prometheus.MustNewConstMetric(descLabelOverflow, prometheus.CounterValue, float64(l.c.overflowed()), l.name)
	}
}

// Registry is where further collectors (golens_ health) register.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// labels returns lv followed by the process's resource labels, each valid
// UTF-8 as Prometheus requires of label values. The decoders made the
// target's strings valid already; checking again costs little and keeps
// one bad value from failing the event.
func (m *Metrics) labels(p *event.Process, lv ...string) []string {
	for _, a := range m.extra {
		lv = append(lv, p.Resource[a])
	}
	for i, v := range lv {
		lv[i] = event.ValidUTF8(v)
	}
	return lv
}

// Why an event could not be counted, for golens_metrics_record_failed_total.
const (
	failLabels = iota // the vector refused the label values
	failPanic         // recording panicked: a bug, contained to the event
	numFailReasons
)

var failReasonNames = [numFailReasons]string{"labels", "panic"}

// fail counts an event the metrics could not record, and says so in one
// line per 10 s at most: a flood of bad events must not flood the log.
func (m *Metrics) fail(reason int, ev event.Event, err any) {
	m.failed.WithLabelValues(failReasonNames[reason]).Inc()
	now := time.Now().Unix()
	if last := m.lastErrLog.Load(); now-last >= 10 && m.lastErrLog.CompareAndSwap(last, now) {
		m.log.Error("event not counted in metrics; counted in golens_metrics_record_failed_total",
			"reason", failReasonNames[reason], "event", fmt.Sprintf("%T", ev), "err", err)
	}
}

// counter returns vec's counter for lv; nil (the event counted as failed)
// when the vector refuses the labels.
func (m *Metrics) counter(vec *prometheus.CounterVec, ev event.Event, lv []string) prometheus.Counter {
	c, err := vec.GetMetricWithLabelValues(lv...)
	if err != nil {
		m.fail(failLabels, ev, err)
		return nil
	}
	return c
}

// observer is counter for histograms.
func (m *Metrics) observer(vec *prometheus.HistogramVec, ev event.Event, lv []string) prometheus.Observer {
	o, err := vec.GetMetricWithLabelValues(lv...)
	if err != nil {
		m.fail(failLabels, ev, err)
		return nil
	}
	return o
}

// count adds one event to a counter and a duration histogram of the same
// labels.
func (m *Metrics) count(c *prometheus.CounterVec, h *prometheus.HistogramVec, ev event.Event, lv []string, d time.Duration, now time.Time) {
	m.mu.Lock()
	m.keyBuf = appendKey(m.keyBuf[:0], lv)
	p := m.pairs[c][string(m.keyBuf)] // no string allocated for the lookup
	if p != nil {
		p.cnts.last, p.obss.last = now, now
	}
	m.mu.Unlock()
	if p == nil {
		if p = m.newPair(c, h, ev, lv, now); p == nil {
			return
		}
	}
	p.cnt.Inc()
	p.obs.Observe(d.Seconds())
}

// newPair looks up lv's children in c and h, notes them as updated at now
// and keeps them for count's next event of the same labels.
func (m *Metrics) newPair(c *prometheus.CounterVec, h *prometheus.HistogramVec, ev event.Event, lv []string, now time.Time) *pair {
	cnt, obs := m.counter(c, ev, lv), m.observer(h, ev, lv)
	if cnt == nil || obs == nil {
		return nil
	}
	key := string(appendKey(nil, lv))
	m.mu.Lock()
	defer m.mu.Unlock()
	p := &pair{cnt: cnt, obs: obs, cnts: m.touchLocked(c.MetricVec, key, lv, now), obss: m.touchLocked(h.MetricVec, key, lv, now)}
	byKey := m.pairs[c]
	if byKey == nil {
		byKey = make(map[string]*pair)
		m.pairs[c] = byKey
	}
	byKey[key] = p
	return p
}

// appendKey appends the label values lv joined by a byte no valid UTF-8
// label value holds.
func appendKey(b []byte, lv []string) []byte {
	for i, v := range lv {
		if i > 0 {
			b = append(b, 0xff)
		}
		b = append(b, v...)
	}
	return b
}

// touch notes that the label set lv of vec was updated at now.
func (m *Metrics) touch(vec *prometheus.MetricVec, lv []string, now time.Time) {
	key := strings.Join(lv, "\xff")
	m.mu.Lock()
	defer m.mu.Unlock()
	m.touchLocked(vec, key, lv, now)
}

// touchLocked is touch with the joined key and mu held; it returns the
// series, updated.
func (m *Metrics) touchLocked(vec *prometheus.MetricVec, key string, lv []string, now time.Time) *series {
	byKey := m.seen[vec]
	if byKey == nil {
		byKey = make(map[string]*series)
		m.seen[vec] = byKey
	}
	s := byKey[key]
	if s == nil {
		s = &series{labels: lv}
		byKey[key] = s
	}
	s.last = now
	return s
}

// Expire removes every label set not updated since now minus the idle TTL:
// series of a route no longer called, or of a target that exited.
func (m *Metrics) Expire(now time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for vec, byKey := range m.seen {
		for key, s := range byKey {
			if now.Sub(s.last) > m.ttl {
				vec.DeleteLabelValues(s.labels...)
				delete(byKey, key)
				n++
			}
		}
	}
	for key := range m.goidgen {
		if _, live := m.seen[m.goroutines.MetricVec][key]; !live {
			delete(m.goidgen, key)
		}
	}
	for _, c := range []*labelCap{m.routes, m.grpcMethods, m.addresses} {
		c.expire(now, m.ttl)
	}
	if n > 0 {
		// A deleted child must not be counted into again: the next event
		// of its labels makes a new one.
		clear(m.pairs)
	}
	m.expired += uint64(n)
	return n
}

// Run expires idle series every minute until ctx is done.
func (m *Metrics) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			m.Expire(now)
		}
	}
}

// Record counts one event.
func (m *Metrics) Record(ev event.Event) { m.RecordAt(ev, time.Now()) }

// RecordAt counts one event observed at now. It never panics: an event
// it cannot count is counted in golens_metrics_record_failed_total, and
// the caller goes on to build its span.
func (m *Metrics) RecordAt(ev event.Event, now time.Time) {
	defer func() {
		if r := recover(); r != nil {
			m.fail(failPanic, ev, r)
		}
	}()
	md, ok := ev.(event.Measured)
	if !ok {
		return
	}
	ms := md.Measure()
	p := ev.Target()
	d := ms.Duration
	switch ms.Instrument {
	case event.HTTPServerRequests:
		svc := event.ValidUTF8(p.ServiceName)
		route := m.routes.label(svc, event.ValidUTF8(routeLabel(ms)), now)
		lv := m.labels(p, svc, ms.Method, route, statusLabel(ms))
		m.count(m.requests, m.duration, ev, lv, d, now)
	case event.HTTPClientRequests:
		svc := event.ValidUTF8(p.ServiceName)
		host := m.addresses.label(svc, event.ValidUTF8(ms.Host), now)
		lv := m.labels(p, svc, ms.Method, host, statusLabel(ms))
		m.count(m.clientRequests, m.clientDuration, ev, lv, d, now)
	case event.GRPCServerCalls, event.GRPCClientCalls:
		side := 0
		if ms.Instrument == event.GRPCClientCalls {
			side = 1
		}
		svc := event.ValidUTF8(p.ServiceName)
		grpcSvc, method := event.SplitMethod(ms.Method)
		if m.grpcMethods.label(svc, event.ValidUTF8(ms.Method), now) == Overflow {
			grpcSvc, method = Overflow, Overflow
		}
		lv := m.labels(p, svc, grpcSvc, method, ms.Code)
		m.count(m.grpcHandled[side], m.grpcHandling[side], ev, lv, d, now)
	case event.GCPauses:
		lv := m.labels(p, p.ServiceName)
		pause := m.observer(m.gcPause, ev, lv)
		if pause == nil {
			return // the same labels fail every vector below
		}
		pause.Observe(d.Seconds())
		m.touch(m.gcPause.MetricVec, lv, now)
		// Two pauses a cycle; the cycle is complete at mark termination.
		if ms.CycleDone {
			m.gcCycles.WithLabelValues(lv...).Inc()
			m.touch(m.gcCycles.MetricVec, lv, now)
			if ms.HeapMarked > 0 {
				m.heapLive.WithLabelValues(lv...).Set(float64(ms.HeapMarked))
				m.touch(m.heapLive.MetricVec, lv, now)
			}
		}
		if ms.GoroutinesIssued > 0 {
			m.countGoroutines(lv, ms.GoroutinesIssued, now)
		}
	}
}

// countGoroutines turns the runtime's goroutine id counter into a counter
// of goroutines created since golens first saw the service.
func (m *Metrics) countGoroutines(lv []string, issued uint64, now time.Time) {
	key := strings.Join(lv, "\xff") // as touch keys it, so Expire forgets both
	m.mu.Lock()
	last, seen := m.goidgen[key]
	m.goidgen[key] = issued
	m.mu.Unlock()
	c := m.goroutines.WithLabelValues(lv...)
	if seen && issued > last {
		c.Add(float64(issued - last))
	}
	m.touch(m.goroutines.MetricVec, lv, now)
}

// statusLabel is the status code, "unknown" when the probe could not read
// it, "error" for a call that got no usable answer.
func statusLabel(ms event.Measure) string {
	switch {
	case ms.NoAnswer:
		return "error"
	case ms.Status == 0:
		return "unknown"
	}
	if ms.Status > 0 && ms.Status < len(statusTexts) {
		return statusTexts[ms.Status]
	}
	return strconv.Itoa(ms.Status)
}

// statusTexts are the decimal status codes up to 599, made once: Itoa
// allocates for every code from 100 up, once per event.
var statusTexts = func() (t [600]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

// routeLabel prefers the mux pattern's path template over the raw path.
func routeLabel(ms event.Measure) string {
	if ms.Route != "" {
		return ms.Route
	}
	return NormalizePath(ms.Path)
}

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	srv   *http.Server
	ln    net.Listener
	ready atomic.Bool
	note  atomic.Pointer[func() string]
}

// SetHealthNote adds fn's text, when not empty, to /healthz (which stays
// 200: the agent runs on), e.g. "kubernetes API unreachable: ...".
func (s *Server) SetHealthNote(fn func() string) { s.note.Store(&fn) }

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
		// Alive whatever its dependencies say; a degraded one is named.
		w.Write([]byte("ok\n"))
		if f := s.note.Load(); f != nil {
			if n := (*f)(); n != "" {
				w.Write([]byte(n + "\n"))
			}
		}
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready: targets still attaching\n", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	s.srv = NewHTTPServer(mux)
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// SetReady flips /readyz to 200.
func (s *Server) SetReady() { s.ready.Store(true) }

// Close closes the listener of a server that was never served.
func (s *Server) Close() error { return s.ln.Close() }

// Serve runs until ctx is cancelled.
func (s *Server) Serve(ctx context.Context) error { return Serve(ctx, s.srv, s.ln) }
