package sampler

import (
	"encoding/json"
	"math"
	"net/http"
)

// The JSON Jaeger v2's remote_sampling extension answers on its HTTP
// endpoint: its legacy (Thrift) form of api_v2 SamplingStrategyResponse,
// the strategy type a number, which the Jaeger remote samplers of the
// OpenTelemetry SDKs poll. Field order and presence are Jaeger's, so that
// the answer is the same bytes.
type (
	remoteStrategy struct {
		StrategyType          int                  `json:"strategyType"`
		ProbabilisticSampling *remoteProbabilistic `json:"probabilisticSampling,omitempty"`
		RateLimitingSampling  *remoteRateLimiting  `json:"rateLimitingSampling,omitempty"`
		OperationSampling     *remoteOperations    `json:"operationSampling,omitempty"`
	}
	remoteProbabilistic struct {
		SamplingRate float64 `json:"samplingRate"`
	}
	remoteRateLimiting struct {
		// The legacy form has whole traces per second only (int16).
		MaxTracesPerSecond int16 `json:"maxTracesPerSecond"`
	}
	remoteOperations struct {
		DefaultSamplingProbability       float64           `json:"defaultSamplingProbability"`
		DefaultLowerBoundTracesPerSecond float64           `json:"defaultLowerBoundTracesPerSecond"`
		PerOperationStrategies           []remoteOperation `json:"perOperationStrategies"`
		DefaultUpperBoundTracesPerSecond float64           `json:"defaultUpperBoundTracesPerSecond"`
	}
	remoteOperation struct {
		Operation             string              `json:"operation"`
		ProbabilisticSampling remoteProbabilistic `json:"probabilisticSampling"`
	}
)

// The strategy types of the protocol.
const (
	remoteProbabilisticType = 0
	remoteRateLimitingType  = 1
)

// Handler serves Jaeger's remote sampling endpoint, GET ?service=NAME, with
// the strategies in force for that service after SLA scaling, so SDKs
// using the Jaeger remote sampler follow the same policy as golens. Mount it
// where SDKs expect it (usually /sampling).
//
// For a strategies file, it answers what Jaeger v2's remote_sampling
// extension answers for that file, to the byte, while the SLA scale is 1:
// per-operation strategies are probabilistic only (rate-limited operations
// are left out, so a default strategy's operation of the same name is
// served); the default strategy's operations are merged into every
// service's, a rate-limited service included (its operations' default
// probability is then JaegerDefaultProbability, unless it took the
// default's whole); a rate is truncated to whole traces per second. Where
// Jaeger fails (a rate above 32767 traces per second, which its answer
// cannot hold: HTTP 500) golens serves 32767; and an SLA scale never takes
// a served rate of at least 1 down to 0.
func (s *Sampler) Handler() http.Handler {
	return http.HandlerFunc(s.serveSampling)
}

func (s *Sampler) serveSampling(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// As Jaeger: exactly one service parameter, which may be empty (the
	// default strategy).
	services := r.URL.Query()["service"]
	if len(services) != 1 {
		http.Error(w, "'service' parameter must be provided once: ask GET ?service=NAME", http.StatusBadRequest)
		return
	}
	b, err := json.Marshal(s.remote(services[0]))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// remote builds the response for a service.
func (s *Sampler) remote(service string) remoteStrategy {
	st := s.Strategies()
	ss := st.lookup(service)
	scale := s.Effective(service, "").Scale
	var out remoteStrategy
	if ss.Type == RateLimiting {
		out.StrategyType = remoteRateLimitingType
		out.RateLimitingSampling = &remoteRateLimiting{MaxTracesPerSecond: wholeRate(ss.Param, scale)}
	} else {
		out.StrategyType = remoteProbabilisticType
		out.ProbabilisticSampling = &remoteProbabilistic{SamplingRate: scaled(ss.Param, scale)}
	}
	if ro := st.remoteOps(service); ro != nil {
		ops := make([]remoteOperation, len(ro.ops))
		for i, o := range ro.ops {
			ops[i] = remoteOperation{o.name, remoteProbabilistic{scaled(o.probability, scale)}}
		}
		out.OperationSampling = &remoteOperations{
			DefaultSamplingProbability: scaled(ro.defaultProbability, scale),
			PerOperationStrategies:     ops,
		}
	}
	return out
}

// scaled applies the SLA scale to a probability, keeping it one.
func scaled(p, scale float64) float64 {
	return min(p*scale, 1)
}

// wholeRate is the served rate of a strategy of rate traces per second
// under the SLA scale: truncated to whole traces as Jaeger does, never
// scaled from at least 1 to 0, at most what the answer can hold.
func wholeRate(rate, scale float64) int16 {
	v := rate * scale
	switch {
	case rate <= 0 || v <= 0:
		return 0
	case v >= math.MaxInt16:
		return math.MaxInt16
	case v < 1 && rate >= 1:
		return 1
	}
	return int16(v) // truncates, as Jaeger's int32(param)
}
