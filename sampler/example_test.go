package sampler_test

import (
	"fmt"
	"time"

	"github.com/golens/golens/sampler"
)

// A tracer decides each finished span and passes it through a Hold, which
// keeps a dropped span for a moment in case its trace turns critical.
func Example() {
	st, err := sampler.Parse([]byte(`{
	  "default_strategy": {"type": "probabilistic", "param": 0.5},
	  "service_strategies": [{"service": "shop", "type": "probabilistic", "param": 0,
	    "operation_strategies": [{"operation": "GET /checkout", "type": "probabilistic", "param": 0,
	      "latency_threshold_ms": 250}]}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	s := sampler.New(sampler.Config{}, st)
	hold := sampler.NewHold(sampler.HoldConfig{}, func(name string, d sampler.Decision) {
		fmt.Printf("%s: keep=%v reason=%s\n", name, d.Keep, d.Reason)
	})
	trace := sampler.TraceID{15: 7}

	// The client call to the database finishes first: fine on its own.
	db := sampler.Span{Service: "shop", Operation: "SELECT", TraceID: trace, Duration: 40 * time.Millisecond}
	hold.Add(trace, "db call", s.Decide(db))

	// Then the request that waited on it, over its latency threshold: both
	// are kept.
	req := sampler.Span{Service: "shop", Operation: "GET /checkout", TraceID: trace, Duration: 300 * time.Millisecond}
	hold.Add(trace, "request", s.Decide(req))

	// A root of an unlisted service, sampled at 0.5 by trace id.
	d := s.Decide(sampler.Span{Service: "search", Operation: "GET /q", TraceID: sampler.TraceID{9: 0xc0}})
	fmt.Println("search:", d.Keep, d.Reason, d.TraceState)
	// Output:
	// db call: keep=true reason=critical_trace
	// request: keep=true reason=critical_latency
	// search: true probabilistic ot=th:8
}
