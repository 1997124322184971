package sampler

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: any bytes give validated strategies within the bounds, or an
// ErrInvalidStrategies; never a panic.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("testdata", "strategies.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(`{"default_strategy": {"type": "probabilistic", "param": 0.3},
	  "service_strategies": [{"service": "frontend", "type": "ratelimiting", "param": 10,
	    "operation_strategies": [{"operation": "GET /", "type": "probabilistic", "param": 1, "latency_threshold_ms": 250}]}]}`))
	f.Add([]byte(`{"service_strategies": [{"service": "a", "type": "probabilistic", "param": 7}]}`))
	f.Add([]byte(`{"default_strategy": {"type": "ratelimiting", "param": 5, "sla_p95_latency_ms": 1e300, "sla_max_error_ratio": 0.5}}`))
	f.Add([]byte(`{"service_strategies": [{"service": "caf\xe9", "type": "probabilistic", "param": 0.5}]}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidStrategies) {
				t.Fatalf("error %v is not an ErrInvalidStrategies", err)
			}
			return
		}
		if n := len(st.services); n > MaxServices {
			t.Fatalf("%d services", n)
		}
		check := func(s Strategy) {
			switch {
			case s.Type == Probabilistic && (s.Param < 0 || s.Param > 1),
				s.Type == RateLimiting && s.Param < 0,
				s.Type != Probabilistic && s.Type != RateLimiting,
				s.LatencyThreshold < 0:
				t.Fatalf("invalid strategy accepted: %+v", s)
			}
		}
		for _, name := range append(st.Services(), "") {
			ss := st.Service(name)
			check(ss.Strategy)
			if len(ss.Operations) > MaxServiceOperations {
				t.Fatalf("service %q: %d operations", name, len(ss.Operations))
			}
			for _, o := range ss.Operations {
				check(o)
			}
			if ss.SLAMaxErrorRatio < 0 || ss.SLAMaxErrorRatio > 1 || ss.SLAP95 < 0 {
				t.Fatalf("service %q: SLA %v %v", name, ss.SLAP95, ss.SLAMaxErrorRatio)
			}
		}
	})
}
