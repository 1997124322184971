package sampler

import (
	"encoding/json"
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

	tests := []struct {
		name   string
		method string
		query  string
		code   int
		body   string // JSON, compared as values; or a substring for errors
	}{
		{"probabilistic with operations", "GET", "?service=checkout", 200, `{
			"strategyType": "PROBABILISTIC",
			"probabilisticSampling": {"samplingRate": 0.5},
			"operationSampling": {
				"defaultSamplingProbability": 0.5,
				"defaultLowerBoundTracesPerSecond": 0,
				"perOperationStrategies": [
					{"operation": "GET /cart/{id}", "probabilisticSampling": {"samplingRate": 0.2}},
					{"operation": "GET /healthz", "probabilisticSampling": {"samplingRate": 0}},
					{"operation": "GET /metrics", "probabilisticSampling": {"samplingRate": 0}},
					{"operation": "POST /orders", "probabilisticSampling": {"samplingRate": 1}}]}}`},
		{"rate limiting", "GET", "?service=inventory", 200, `{
			"strategyType": "RATE_LIMITING",
			"rateLimitingSampling": {"maxTracesPerSecond": 50}}`},
		{"SLA-scaled", "GET", "?service=search", 200, `{
			"strategyType": "PROBABILISTIC",
			"probabilisticSampling": {"samplingRate": 0.005},
			"operationSampling": {
				"defaultSamplingProbability": 0.005,
				"defaultLowerBoundTracesPerSecond": 0,
				"perOperationStrategies": [
					{"operation": "GET /healthz", "probabilisticSampling": {"samplingRate": 0}},
					{"operation": "GET /metrics", "probabilisticSampling": {"samplingRate": 0}}]}}`},
		{"unknown service gets the default", "GET", "?service=nobody", 200, `{
			"strategyType": "PROBABILISTIC",
			"probabilisticSampling": {"samplingRate": 0.1},
			"operationSampling": {
				"defaultSamplingProbability": 0.1,
				"defaultLowerBoundTracesPerSecond": 0,
				"perOperationStrategies": [
					{"operation": "GET /healthz", "probabilisticSampling": {"samplingRate": 0}},
					{"operation": "GET /metrics", "probabilisticSampling": {"samplingRate": 0}}]}}`},
		{"no service", "GET", "", 400, "missing service"},
		{"empty service", "GET", "?service=", 400, "missing service"},
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
			var got, want any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("response is not JSON: %v\n%s", err, body)
			}
			if err := json.Unmarshal([]byte(tt.body), &want); err != nil {
				t.Fatal(err)
			}
			if g, w := canonical(t, got), canonical(t, want); g != w {
				t.Errorf("response\n%s\nwant\n%s", g, w)
			}
		})
	}
}

func canonical(t *testing.T, v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWholeRate(t *testing.T) {
	tests := []struct {
		in   float64
		want int32
	}{{0, 0}, {-1, 0}, {0.2, 1}, {1, 1}, {2.4, 2}, {2.5, 3}, {1e12, 1<<31 - 1}}
	for _, tt := range tests {
		if got := wholeRate(tt.in); got != tt.want {
			t.Errorf("wholeRate(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
