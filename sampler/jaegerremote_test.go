package sampler

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/samplers/jaegerremote"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestJaegerRemoteSamplerAdoptsRate points the OpenTelemetry Go SDK's Jaeger
// remote sampler at Handler and checks it samples at the served rate.
func TestJaegerRemoteSamplerAdoptsRate(t *testing.T) {
	clock := newFakeClock()
	s := New(Config{Clock: clock}, mustParse(t, `{
	  "default_strategy": {"type": "probabilistic", "param": 0.001},
	  "service_strategies": [{"service": "shop", "type": "probabilistic", "param": 0.25,
	    "operation_strategies": [{"operation": "GET /always", "type": "probabilistic", "param": 1}]}]}`))
	mux := http.NewServeMux()
	mux.Handle("/sampling", s.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ids := randomIDs(99, 20000)
	// rate returns the fraction of root spans named op that a fresh remote
	// sampler keeps once it has fetched the strategy.
	rate := func(op string) float64 {
		rs := jaegerremote.New("shop",
			jaegerremote.WithSamplingServerURL(srv.URL+"/sampling"),
			jaegerremote.WithSamplingRefreshInterval(time.Hour),
			jaegerremote.WithInitialSampler(sdktrace.NeverSample()),
		)
		defer rs.Close()
		rs.UpdateSampler()
		kept := 0
		for _, id := range ids {
			r := rs.ShouldSample(sdktrace.SamplingParameters{
				ParentContext: context.Background(),
				TraceID:       trace.TraceID(id),
				Name:          op,
				Kind:          trace.SpanKindServer,
			})
			if r.Decision == sdktrace.RecordAndSample {
				kept++
			}
		}
		return float64(kept) / float64(len(ids))
	}

	got := rate("GET /")
	inBinomialBand(t, "remote sampler at 0.25", int(got*float64(len(ids))), len(ids), 0.25, 5)
	if got := rate("GET /always"); got != 1 {
		t.Errorf("operation strategy 1: remote sampler kept %v", got)
	}

	// Under SLA breach golens halves the rate, and serves the halved one.
	for range 100 {
		s.Observe("shop", time.Millisecond, true)
	}
	clock.Advance(DefaultSLAInterval)
	got = rate("GET /")
	inBinomialBand(t, "remote sampler at 0.125", int(got*float64(len(ids))), len(ids), 0.125, 5)
}
