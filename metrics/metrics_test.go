package metrics

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/golens/golens/probes/event"
)

func req(svc, path string, at time.Time) *event.HTTPServer {
	return &event.HTTPServer{Process: &event.Process{ServiceName: svc}, Method: "GET", Path: path,
		Status: 200, ProtoMajor: 1, Start: at, End: at.Add(3 * time.Millisecond)}
}

func TestRecordAndExpire(t *testing.T) {
	m := New(Options{IdleTTL: 10 * time.Minute})
	t0 := time.Unix(1700000000, 0)
	m.RecordAt(req("a", "/users/42", t0), t0)
	m.RecordAt(req("a", "/users/43", t0), t0)
	m.RecordAt(req("b", "/x", t0), t0)
	if got := testutil.ToFloat64(m.requests.WithLabelValues("a", "GET", "/users/{id}", "200")); got != 2 {
		t.Fatalf("a's normalised route counted %v, want 2", got)
	}
	m.RecordAt(req("a", "/users/44", t0.Add(6*time.Minute)), t0.Add(6*time.Minute))
	if n := m.Expire(t0.Add(11 * time.Minute)); n != 2 {
		t.Errorf("expired %d series, want b's counter and histogram", n)
	}
	if got := testutil.CollectAndCount(m.requests); got != 1 {
		t.Errorf("%d request series left, want a's only", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("a", "GET", "/users/{id}", "200")); got != 3 {
		t.Errorf("a's live series lost its count: %v", got)
	}
}

// A label set that expired and comes back is counted afresh, in the
// registry: not into the child Expire deleted.
func TestExpiredSeriesReturns(t *testing.T) {
	m := New(Options{IdleTTL: 10 * time.Minute})
	t0 := time.Unix(1700000000, 0)
	m.RecordAt(req("a", "/x", t0), t0)
	m.RecordAt(req("a", "/x", t0), t0)
	if n := m.Expire(t0.Add(11 * time.Minute)); n != 2 {
		t.Fatalf("expired %d series, want a's counter and histogram", n)
	}
	t1 := t0.Add(12 * time.Minute)
	m.RecordAt(req("a", "/x", t1), t1)
	if got := testutil.CollectAndCount(m.requests); got != 1 {
		t.Fatalf("%d request series, want a's back", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("a", "GET", "/x", "200")); got != 1 {
		t.Errorf("a's returned series counted %v, want 1", got)
	}
	if got := testutil.CollectAndCount(m.duration); got != 1 {
		t.Errorf("%d duration series, want a's back", got)
	}
	// Still tracked for expiry.
	if n := m.Expire(t1.Add(11 * time.Minute)); n != 2 {
		t.Errorf("expired %d series the second time, want 2", n)
	}
}

func TestPauses(t *testing.T) {
	m := New(Options{})
	t0 := time.Unix(1700000000, 0)
	p := &event.Process{ServiceName: "a"}
	for i, r := range []event.PauseReason{event.PauseGCSweepTermination, event.PauseGCMarkTermination, 5, event.PauseGCSweepTermination, event.PauseGCMarkTermination} {
		m.RecordAt(&event.Pause{Process: p, Reason: r, Start: t0, End: t0.Add(50 * time.Microsecond),
			HeapMarked: 4 << 20, GoroutinesIssued: uint64(100 + 10*i)}, t0)
	}
	if got := testutil.ToFloat64(m.gcCycles.WithLabelValues("a")); got != 2 {
		t.Errorf("cycles %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.heapLive.WithLabelValues("a")); got != 4<<20 {
		t.Errorf("heap %v", got)
	}
	if got := testutil.ToFloat64(m.goroutines.WithLabelValues("a")); got != 40 {
		t.Errorf("goroutines created %v, want 40 (140-100)", got)
	}
	var d dto.Metric
	if err := m.gcPause.WithLabelValues("a").(prometheus.Metric).Write(&d); err != nil {
		t.Fatal(err)
	}
	if got := d.GetHistogram().GetSampleCount(); got != 4 {
		t.Errorf("%d GC pauses observed, want 4 (the non-GC one left out)", got)
	}
}

// Resource labels: two services of one name in two namespaces are two
// series; a target without the attribute gets the label empty; goroutine
// counts are kept per label set.
func TestResourceLabels(t *testing.T) {
	m := New(Options{ResourceLabels: []string{"k8s.namespace.name", "k8s.deployment.name"}})
	t0 := time.Unix(1700000000, 0)
	shop := &event.Process{ServiceName: "cart", Resource: map[string]string{"k8s.namespace.name": "shop", "k8s.deployment.name": "cart", "k8s.pod.name": "cart-x"}}
	test := &event.Process{ServiceName: "cart", Resource: map[string]string{"k8s.namespace.name": "test", "k8s.deployment.name": "cart"}}
	vm := &event.Process{ServiceName: "cart"}
	for i, p := range []*event.Process{shop, shop, test, vm} {
		r := req("", "/x", t0)
		r.Process = p
		m.RecordAt(r, t0)
		m.RecordAt(&event.Pause{Process: p, Reason: event.PauseGCMarkTermination, Start: t0, End: t0.Add(time.Microsecond), GoroutinesIssued: uint64(100 * (i + 1))}, t0)
	}
	for _, c := range []struct {
		lv   []string
		want float64
	}{
		{[]string{"cart", "GET", "/x", "200", "shop", "cart"}, 2},
		{[]string{"cart", "GET", "/x", "200", "test", "cart"}, 1},
		{[]string{"cart", "GET", "/x", "200", "", ""}, 1},
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.lv...)); got != c.want {
			t.Errorf("requests %v = %v, want %v", c.lv, got, c.want)
		}
	}
	if got := testutil.CollectAndCount(m.requests); got != 3 {
		t.Errorf("%d request series, want 3 (pod names are not labels)", got)
	}
	// shop's pauses carried ids 100 then 200: 100 created; the others one
	// observation each, nothing created yet.
	if got := testutil.ToFloat64(m.goroutines.WithLabelValues("cart", "shop", "cart")); got != 100 {
		t.Errorf("shop's goroutines created %v, want 100", got)
	}
	if got := testutil.ToFloat64(m.goroutines.WithLabelValues("cart", "test", "cart")); got != 0 {
		t.Errorf("test's goroutines created %v, want 0", got)
	}
	if n := m.Expire(t0.Add(time.Hour)); n == 0 || len(m.goidgen) != 0 {
		t.Errorf("expired %d series, goroutine state left %v", n, m.goidgen)
	}
}

// /debug/pprof/ is never on the metrics listener, only on its own.
func TestListenPprof(t *testing.T) {
	s, err := New(Options{}).Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	go Serve(ctx, NewPprofServer(), ln)
	for _, c := range []struct {
		addr string
		want bool
	}{{s.Addr(), false}, {ln.Addr().String(), true}} {
		resp, err := http.Get("http://" + c.addr + "/debug/pprof/heap?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.StatusCode == 200 && strings.Contains(string(body), "heap profile"); got != c.want {
			t.Errorf("%s: GET /debug/pprof/heap answered %d %.40q, want a profile: %v", c.addr, resp.StatusCode, body, c.want)
		}
	}
}

// BenchmarkRecord is the metrics' cost per server request event.
func BenchmarkRecord(b *testing.B) {
	m := New(Options{})
	p := &event.Process{ServiceName: "svc"}
	now := time.Now()
	e := &event.HTTPServer{Process: p, Method: "GET", Path: "/hello", Route: "/hello", Status: 200, ProtoMajor: 1, Start: now, End: now.Add(time.Millisecond)}
	b.ReportAllocs()
	for b.Loop() {
		m.RecordAt(e, now)
	}
}

// golens' own counters reach the registry under their names and reasons.
func TestSelfMetrics(t *testing.T) {
	m := New(Options{})
	m.RegisterSelf(func() SelfStats {
		return SelfStats{SpansLinked: 7, SpansUnlinked: 3, SpansLookupBusy: 4, SpansNoConn: 2, LinkOverflow: 1,
			SpansDropped: 5, SpansUnexported: 6, KubernetesAPI: -1}
	})
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			key := mf.GetName()
			for _, lp := range mt.GetLabel() {
				key += "/" + lp.GetValue()
			}
			got[key] = mt.GetCounter().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"golens_spans_linked_total":                  7,
		"golens_spans_unlinked_total/no_client_span": 3,
		"golens_spans_unlinked_total/lookup_busy":    4,
		"golens_spans_unlinked_total/no_conn":        2,
		"golens_link_overflow_total":                 1,
		"golens_spans_dropped_total/queue_full":      5,
		"golens_spans_dropped_total/shutdown":        6,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
}

// Label values that are not valid UTF-8 — had they got past the decoders —
// are counted under their sanitized form, for every kind of event; a bug
// that panics costs one event, counted, and one log line per 10 s.
func TestRecordNeverPanics(t *testing.T) {
	var logged strings.Builder
	m := New(Options{Log: slog.New(slog.NewTextHandler(&logged, nil)), ResourceLabels: []string{"k8s.pod.name"}})
	t0 := time.Unix(1700000000, 0)
	p := &event.Process{ServiceName: "caf\xe9", Resource: map[string]string{"k8s.pod.name": "pod\xff"}}
	m.RecordAt(&event.HTTPServer{Process: p, Method: "GET", Path: "/\xff\xfe", Status: 404, Start: t0, End: t0}, t0)
	m.RecordAt(&event.HTTPClient{Process: p, Method: "GET", Host: "h\xc3:80", Status: 200, Start: t0, End: t0}, t0)
	m.RecordAt(&event.GRPC{Process: p, Server: true, Method: "/pkg.S\xff/M\xfe", Start: t0, End: t0}, t0)
	m.RecordAt(&event.Pause{Process: p, Reason: event.PauseGCMarkTermination, Start: t0, End: t0, HeapMarked: 1}, t0)
	for _, c := range []struct {
		c    prometheus.Collector
		want string
	}{
		{m.requests, "k8s_pod_name=\"pod\uFFFD\",method=\"GET\",route=\"/\uFFFD\uFFFD\",service_name=\"caf\uFFFD\",status_code=\"404\""},
		{m.clientRequests, "k8s_pod_name=\"pod\uFFFD\",method=\"GET\",server_address=\"h\uFFFD\",service_name=\"caf\uFFFD\",status_code=\"200\""},
		{m.grpcHandled[0], "grpc_code=\"OK\",grpc_method=\"M\uFFFD\",grpc_service=\"pkg.S\uFFFD\",k8s_pod_name=\"pod\uFFFD\",service_name=\"caf\uFFFD\""},
		{m.gcCycles, "k8s_pod_name=\"pod\uFFFD\",service_name=\"caf\uFFFD\""},
	} {
		if got := labelSets(t, c.c); len(got) != 1 || got[0] != c.want {
			t.Errorf("series %v, want {%s}", got, c.want)
		}
	}
	if got := testutil.ToFloat64(m.failed.WithLabelValues("labels")); got != 0 {
		t.Errorf("%v events failed for their labels", got)
	}

	// An event without its process is a bug upstream: contained.
	for range 3 {
		m.RecordAt(&event.HTTPServer{Method: "GET", Path: "/"}, t0)
	}
	if got := testutil.ToFloat64(m.failed.WithLabelValues("panic")); got != 3 {
		t.Errorf("golens_metrics_record_failed_total{reason=panic} %v, want 3", got)
	}
	if n := strings.Count(logged.String(), "event not counted"); n != 1 {
		t.Errorf("%d log lines for 3 failures within 10 s, want 1:\n%s", n, logged.String())
	}
}

// labelSets renders each series of c as name="value" pairs, by name.
func labelSets(t *testing.T, c prometheus.Collector) []string {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	var out []string
	for mt := range ch {
		var pb dto.Metric
		if err := mt.Write(&pb); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, lp := range pb.Label {
			parts = append(parts, lp.GetName()+"="+strconv.Quote(lp.GetValue()))
		}
		out = append(out, strings.Join(parts, ","))
	}
	return out
}

// gRPC methods and client server addresses are capped per service as
// routes are: beyond the cap one "other" series, and a count of what was
// folded into it.
func TestTrafficLabelsCapped(t *testing.T) {
	m := New(Options{GRPCMethodsPerSvc: 2, AddressesPerSvc: 2})
	t0 := time.Unix(1700000000, 0)
	p := &event.Process{ServiceName: "a"}
	for i := range 5 {
		m.RecordAt(&event.GRPC{Process: p, Server: true, Method: fmt.Sprintf("/pkg.S/M%d", i), Code: 12, Start: t0, End: t0}, t0)
		m.RecordAt(&event.HTTPClient{Process: p, Method: "GET", Host: fmt.Sprintf("h%d:80", i), Status: 200, Start: t0, End: t0}, t0)
	}
	if got := testutil.CollectAndCount(m.grpcHandled[0]); got != 3 {
		t.Errorf("%d gRPC series, want 2 methods and other", got)
	}
	if got := testutil.ToFloat64(m.grpcHandled[0].WithLabelValues("a", Overflow, Overflow, "UNIMPLEMENTED")); got != 3 {
		t.Errorf("other gRPC series %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.clientRequests.WithLabelValues("a", "GET", Overflow, "200")); got != 3 {
		t.Errorf("other server_address series %v, want 3", got)
	}
	want := `
# HELP golens_label_overflow_total Events whose label value was replaced by "other" because the service reached that label's cap.
# TYPE golens_label_overflow_total counter
golens_label_overflow_total{label="grpc_method"} 3
golens_label_overflow_total{label="route"} 0
golens_label_overflow_total{label="server_address"} 3
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "golens_label_overflow_total"); err != nil {
		t.Error(err)
	}
}
