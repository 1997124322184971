package sampler

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	st, err := Load(filepath.Join("testdata", "strategies.json"))
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	s := New(Config{Clock: clock}, st)
	// search breaches its SLA (all errors) for one evaluation: scale 0.5.
	for range 100 {
		s.Observe("search", time.Millisecond, true)
	}
	clock.Advance(DefaultSLAInterval)

	// The bodies of 200s are what Jaeger v2's remote_sampling extension
	// (jaeger v1.76.0) answered for this file, byte for byte, except
	// search's, which golens scales by its SLA.
	tests := []struct {
		name   string
		method string
		query  string
		code   int
		body   string // exact; or a substring for errors
	}{
		{"probabilistic with operations, the default's merged in", "GET", "?service=checkout", 200,
			`{"strategyType":0,"probabilisticSampling":{"samplingRate":0.5},"operationSampling":{"defaultSamplingProbability":0.5,"defaultLowerBoundTracesPerSecond":0,"perOperationStrategies":[{"operation":"POST /orders","probabilisticSampling":{"samplingRate":1}},{"operation":"GET /cart/{id}","probabilisticSampling":{"samplingRate":0.2}},{"operation":"GET /healthz","probabilisticSampling":{"samplingRate":0}},{"operation":"GET /metrics","probabilisticSampling":{"samplingRate":0}}],"defaultUpperBoundTracesPerSecond":0}}`},
		{"rate limiting takes the default's operations", "GET", "?service=inventory", 200,
			`{"strategyType":1,"rateLimitingSampling":{"maxTracesPerSecond":50},"operationSampling":{"defaultSamplingProbability":0.1,"defaultLowerBoundTracesPerSecond":0,"perOperationStrategies":[{"operation":"GET /healthz","probabilisticSampling":{"samplingRate":0}},{"operation":"GET /metrics","probabilisticSampling":{"samplingRate":0}}],"defaultUpperBoundTracesPerSecond":0}}`},
		{"SLA-scaled", "GET", "?service=search", 200,
			`{"strategyType":0,"probabilisticSampling":{"samplingRate":0.005},"operationSampling":{"defaultSamplingProbability":0.005,"defaultLowerBoundTracesPerSecond":0,"perOperationStrategies":[{"operation":"GET /healthz","probabilisticSampling":{"samplingRate":0}},{"operation":"GET /metrics","probabilisticSampling":{"samplingRate":0}}],"defaultUpperBoundTracesPerSecond":0}}`},
		{"unknown service gets the default", "GET", "?service=nobody", 200,
			`{"strategyType":0,"probabilisticSampling":{"samplingRate":0.1},"operationSampling":{"defaultSamplingProbability":0.1,"defaultLowerBoundTracesPerSecond":0,"perOperationStrategies":[{"operation":"GET /healthz","probabilisticSampling":{"samplingRate":0}},{"operation":"GET /metrics","probabilisticSampling":{"samplingRate":0}}],"defaultUpperBoundTracesPerSecond":0}}`},
		{"empty service gets the default", "GET", "?service=", 200,
			`{"strategyType":0,"probabilisticSampling":{"samplingRate":0.1},"operationSampling":{"defaultSamplingProbability":0.1,"defaultLowerBoundTracesPerSecond":0,"perOperationStrategies":[{"operation":"GET /healthz","probabilisticSampling":{"samplingRate":0}},{"operation":"GET /metrics","probabilisticSampling":{"samplingRate":0}}],"defaultUpperBoundTracesPerSecond":0}}`},
		{"no service", "GET", "", 400, "'service' parameter must be provided once"},
		{"two services", "GET", "?service=a&service=b", 400, "'service' parameter must be provided once"},
		{"wrong method", "POST", "?service=checkout", 405, "method not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(tt.method, "/sampling"+tt.query, nil))
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tt.code {
				t.Fatalf("status %d (%s), want %d", rec.Code, body, tt.code)
			}
			if tt.code != http.StatusOK {
				if !strings.Contains(string(body), tt.body) {
					t.Errorf("body %q, want it to contain %q", body, tt.body)
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if string(body) != tt.body {
				t.Errorf("response\n%s\nwant\n%s", body, tt.body)
			}
		})
	}
}

func TestWholeRate(t *testing.T) {
	tests := []struct {
		rate, scale float64
		want        int16
	}{
		{0, 1, 0}, {-1, 1, 0}, {0.2, 1, 0}, {0.5, 0.5, 0}, {1, 1, 1}, {2.4, 1, 2}, {2.9, 1, 2},
		{1, 0.5, 1}, {50, 0.5, 25}, {5, 0.3, 1}, {32767, 1, 32767}, {1e12, 1, 32767},
	}
	for _, tt := range tests {
		if got := wholeRate(tt.rate, tt.scale); got != tt.want {
			t.Errorf("wholeRate(%v, %v) = %d, want %d", tt.rate, tt.scale, got, tt.want)
		}
	}
}
