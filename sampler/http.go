package sampler

import (
	"encoding/json"
	"maps"
	"math"
	"net/http"
	"slices"
)

// The JSON of Jaeger's remote sampling protocol (api_v2
// SamplingStrategyResponse in its proto3 JSON form, enums as names), which
// the Jaeger remote samplers of the OpenTelemetry SDKs poll.
type (
	remoteStrategy struct {
		StrategyType          string               `json:"strategyType"`
		ProbabilisticSampling *remoteProbabilistic `json:"probabilisticSampling,omitempty"`
		RateLimitingSampling  *remoteRateLimiting  `json:"rateLimitingSampling,omitempty"`
		OperationSampling     *remoteOperations    `json:"operationSampling,omitempty"`
	}
	remoteProbabilistic struct {
		SamplingRate float64 `json:"samplingRate"`
	}
	remoteRateLimiting struct {
		// The protocol has whole traces per second only (int32).
		MaxTracesPerSecond int32 `json:"maxTracesPerSecond"`
	}
	remoteOperations struct {
		DefaultSamplingProbability       float64           `json:"defaultSamplingProbability"`
		DefaultLowerBoundTracesPerSecond float64           `json:"defaultLowerBoundTracesPerSecond"`
		PerOperationStrategies           []remoteOperation `json:"perOperationStrategies"`
	}
	remoteOperation struct {
		Operation             string              `json:"operation"`
		ProbabilisticSampling remoteProbabilistic `json:"probabilisticSampling"`
	}
)

// Handler serves Jaeger's remote sampling endpoint, GET ?service=NAME, with
// the strategies in force for that service after SLA scaling, so SDKs
// using the Jaeger remote sampler follow the same policy as golens. Mount it
// where SDKs expect it (usually /sampling).
//
// What the protocol cannot say is left out: per-operation strategies are
// probabilistic only (rate-limited operations fall back to the service's
// probability), a rate-limited service is served its limit alone, and a
// rate is rounded to whole traces per second, at least 1 if positive.
func (s *Sampler) Handler() http.Handler {
	return http.HandlerFunc(s.serveSampling)
}

func (s *Sampler) serveSampling(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	service := r.URL.Query().Get("service")
	if service == "" {
		http.Error(w, "missing service: ask GET ?service=NAME", http.StatusBadRequest)
		return
	}
	b, err := json.Marshal(s.remote(service))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// remote builds the response for a service.
func (s *Sampler) remote(service string) remoteStrategy {
	ss := s.Strategies().lookup(service)
	e := s.Effective(service, "")
	if ss.Type == RateLimiting {
		return remoteStrategy{
			StrategyType:         "RATE_LIMITING",
			RateLimitingSampling: &remoteRateLimiting{MaxTracesPerSecond: wholeRate(e.TracesPerSecond)},
		}
	}
	p := scaled(ss.Param, e.Scale)
	out := remoteStrategy{
		StrategyType:          "PROBABILISTIC",
		ProbabilisticSampling: &remoteProbabilistic{SamplingRate: p},
	}
	var ops []remoteOperation
	for _, name := range slices.Sorted(maps.Keys(ss.Operations)) {
		if o := ss.Operations[name]; o.Type == Probabilistic {
			ops = append(ops, remoteOperation{name, remoteProbabilistic{scaled(o.Param, e.Scale)}})
		}
	}
	if len(ops) > 0 {
		out.OperationSampling = &remoteOperations{DefaultSamplingProbability: p, PerOperationStrategies: ops}
	}
	return out
}

// scaled applies the SLA scale to a probability, keeping it one.
func scaled(p, scale float64) float64 {
	return min(p*scale, 1)
}

func wholeRate(v float64) int32 {
	switch {
	case v <= 0:
		return 0
	case v < 1:
		return 1
	case v >= math.MaxInt32:
		return math.MaxInt32
	}
	return int32(math.Round(v))
}
