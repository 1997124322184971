package sampler

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadExampleFile(t *testing.T) {
	st, err := Load(filepath.Join("testdata", "strategies.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Services(), []string{"checkout", "inventory", "search"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Services() = %v, want %v", got, want)
	}
	ms := time.Millisecond
	health := Strategy{Type: Probabilistic, Param: 0}
	tests := []struct {
		service string
		want    ServiceStrategy
	}{
		{"checkout", ServiceStrategy{
			Service:  "checkout",
			Strategy: Strategy{Type: Probabilistic, Param: 0.5, LatencyThreshold: 800 * ms},
			Operations: map[string]Strategy{
				"POST /orders":   {Type: Probabilistic, Param: 1, LatencyThreshold: 1500 * ms},
				"GET /cart/{id}": {Type: Probabilistic, Param: 0.2},
				"GET /catalog":   {Type: RateLimiting, Param: 5},
				// merged from default_strategy, as Jaeger does
				"GET /healthz": health,
				"GET /metrics": health,
			},
			SLAP95: 400 * ms,
		}},
		{"inventory", ServiceStrategy{
			Service:          "inventory",
			Strategy:         Strategy{Type: RateLimiting, Param: 50},
			Operations:       map[string]Strategy{"GET /healthz": health, "GET /metrics": health},
			SLAMaxErrorRatio: 0.05,
		}},
		{"unlisted", ServiceStrategy{
			Service:    "unlisted",
			Strategy:   Strategy{Type: Probabilistic, Param: 0.1},
			Operations: map[string]Strategy{"GET /healthz": health, "GET /metrics": health},
		}},
	}
	for _, tt := range tests {
		if got := st.Service(tt.service); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Service(%q) =\n%+v\nwant\n%+v", tt.service, got, tt.want)
		}
	}
}

func TestOperationLookup(t *testing.T) {
	st, err := Load(filepath.Join("testdata", "strategies.json"))
	if err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	tests := []struct {
		service, op string
		want        Strategy
		own         bool
	}{
		{"checkout", "POST /orders", Strategy{Probabilistic, 1, 1500 * ms}, true},
		// an operation without latency_threshold_ms takes the service's
		{"checkout", "GET /cart/{id}", Strategy{Probabilistic, 0.2, 800 * ms}, true},
		{"checkout", "GET /healthz", Strategy{Probabilistic, 0, 800 * ms}, true},
		{"checkout", "DELETE /x", Strategy{Probabilistic, 0.5, 800 * ms}, false},
		{"inventory", "GET /stock", Strategy{RateLimiting, 50, 0}, false},
		{"nobody", "GET /metrics", Strategy{Probabilistic, 0, 0}, true},
		{"nobody", "GET /", Strategy{Probabilistic, 0.1, 0}, false},
	}
	for _, tt := range tests {
		got, own := st.lookup(tt.service).operation(tt.op)
		if got != tt.want || own != tt.own {
			t.Errorf("%s %s: got %+v own=%v, want %+v own=%v", tt.service, tt.op, got, own, tt.want, tt.own)
		}
	}
}

func TestParseJaegerFiles(t *testing.T) {
	tests := []struct {
		name  string
		js    string
		check func(*testing.T, *Strategies)
	}{
		{
			name: "plain Jaeger file",
			js: `{"default_strategy": {"type": "probabilistic", "param": 0.3},
			      "service_strategies": [
			        {"service": "frontend", "type": "probabilistic", "param": 0.7},
			        {"service": "payments", "type": "ratelimiting", "param": 10}]}`,
			check: func(t *testing.T, st *Strategies) {
				want := map[string]Strategy{
					"frontend": {Type: Probabilistic, Param: 0.7},
					"payments": {Type: RateLimiting, Param: 10},
					"ledger":   {Type: Probabilistic, Param: 0.3},
				}
				for name, w := range want {
					if got := st.Service(name).Strategy; got != w {
						t.Errorf("%s: %+v, want %+v", name, got, w)
					}
				}
			},
		},
		{
			// As Jaeger's file provider: the file's default is its
			// default probability (golens' own 1000/s is for no file).
			name: "no default_strategy means Jaeger's default probability",
			js:   `{"service_strategies": [{"service": "foo", "type": "probabilistic", "param": 0.8}]}`,
			check: func(t *testing.T, st *Strategies) {
				if got, want := st.Default().Strategy, (Strategy{Type: Probabilistic, Param: JaegerDefaultProbability}); got != want {
					t.Errorf("default %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "empty object",
			js:   `{}`,
			check: func(t *testing.T, st *Strategies) {
				if got := st.Service("x").Strategy; got.Type != Probabilistic || got.Param != JaegerDefaultProbability {
					t.Errorf("got %+v, want Jaeger's default probability", got)
				}
			},
		},
		{
			name: "service operations win over default ones; unknown fields ignored",
			js: `{"default_strategy": {"type": "probabilistic", "param": 0.5, "latency_threshold_ms": 300,
			        "sla_p95_latency_ms": 250, "sla_max_error_ratio": 0.02,
			        "operation_strategies": [{"operation": "op1", "type": "probabilistic", "param": 0.1},
			                                 {"operation": "op2", "type": "probabilistic", "param": 0.2}]},
			      "service_strategies": [{"service": "foo", "type": "ratelimiting", "param": 3,
			        "max_traces_per_second": 9,
			        "operation_strategies": [{"operation": "op1", "type": "probabilistic", "param": 0.9}]}]}`,
			check: func(t *testing.T, st *Strategies) {
				foo := st.Service("foo")
				want := map[string]Strategy{"op1": {Type: Probabilistic, Param: 0.9}, "op2": {Type: Probabilistic, Param: 0.2}}
				if !reflect.DeepEqual(foo.Operations, want) {
					t.Errorf("operations %+v, want %+v", foo.Operations, want)
				}
				if foo.LatencyThreshold != 300*time.Millisecond || foo.SLAP95 != 250*time.Millisecond || foo.SLAMaxErrorRatio != 0.02 {
					t.Errorf("golens extensions of default_strategy not inherited: %+v", foo)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, tt.js))
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		js   string
		want []string // substrings of the error
	}{
		{"invalid JSON", "{\n  \"service_strategies\": [\n    {\"service\": \"a\",}\n  ]\n}",
			[]string{"invalid JSON at line 3, column 21: invalid character '}'"}},
		{"truncated", `{"service_strategies": [`, []string{"invalid JSON"}},
		{"empty file", ``, []string{"invalid JSON"}},
		{"not an object", `[1, 2]`, []string{"the file near line 1, column 2: want a JSON object, got array"}},
		{"param of the wrong type", `{"service_strategies": [{"service": "a", "type": "probabilistic", "param": "0.5"}]}`,
			[]string{"field service_strategies.param near line 1, column 81: want a JSON number, got string"}},
		{"probability above 1", `{"service_strategies": [{"service": "a", "type": "probabilistic", "param": 1.5}]}`,
			[]string{`service "a": param 1.5 is not a probability in [0, 1]`}},
		{"negative probability", `{"service_strategies": [{"service": "a", "type": "probabilistic", "param": -0.1}]}`,
			[]string{`service "a": param -0.1 is not a probability in [0, 1]`}},
		{"operation probability above 1", `{"service_strategies": [{"service": "a", "type": "probabilistic", "param": 0.1,
			"operation_strategies": [{"operation": "GET /x", "type": "probabilistic", "param": 2}]}]}`,
			[]string{`service "a" operation "GET /x": param 2 is not a probability in [0, 1]`}},
		{"default probability above 1", `{"default_strategy": {"type": "probabilistic", "param": 7}}`,
			[]string{`default_strategy: param 7 is not a probability`}},
		{"negative rate", `{"service_strategies": [{"service": "b", "type": "ratelimiting", "param": -3}]}`,
			[]string{`service "b": param -3 is a negative rate (traces per second)`}},
		{"unknown type", `{"service_strategies": [{"service": "c", "type": "const", "param": 1}]}`,
			[]string{`service "c": type "const" is unknown (want "probabilistic" or "ratelimiting")`}},
		{"unknown operation type", `{"default_strategy": {"type": "probabilistic", "param": 1,
			"operation_strategies": [{"operation": "op", "type": "adaptive", "param": 1}]}}`,
			[]string{`default_strategy operation "op": type "adaptive" is unknown`}},
		{"missing type", `{"service_strategies": [{"service": "c", "param": 1}]}`,
			[]string{`service "c": type "" is unknown`}},
		{"missing param", `{"service_strategies": [{"service": "d", "type": "probabilistic"}]}`,
			[]string{`service "d": param is missing`}},
		{"empty service", `{"service_strategies": [{"type": "probabilistic", "param": 1}]}`,
			[]string{`service_strategies[0]: service is empty`}},
		{"duplicate service", `{"service_strategies": [{"service": "e", "type": "probabilistic", "param": 1},
			{"service": "e", "type": "probabilistic", "param": 0.5}]}`,
			[]string{`service "e": service is listed twice`}},
		{"duplicate operation", `{"service_strategies": [{"service": "e", "type": "probabilistic", "param": 1,
			"operation_strategies": [{"operation": "o", "type": "probabilistic", "param": 1},
			                         {"operation": "o", "type": "probabilistic", "param": 1}]}]}`,
			[]string{`service "e" operation "o": operation is listed twice`}},
		{"bad latency threshold", `{"service_strategies": [{"service": "f", "type": "probabilistic", "param": 1,
			"operation_strategies": [{"operation": "o", "type": "probabilistic", "param": 1, "latency_threshold_ms": -5}]}]}`,
			[]string{`service "f" operation "o": latency_threshold_ms -5 is not a positive number of milliseconds`}},
		{"bad SLA", `{"service_strategies": [{"service": "g", "type": "probabilistic", "param": 1,
			"sla_p95_latency_ms": 0, "sla_max_error_ratio": 1.5}]}`,
			[]string{`service "g": sla_p95_latency_ms 0 is not a positive`, `service "g": sla_max_error_ratio 1.5 is not a ratio in (0, 1]`}},
		{"every problem reported", `{"service_strategies": [
			{"service": "h", "type": "probabilistic", "param": 3},
			{"service": "i", "type": "ratelimiting", "param": -1}]}`,
			[]string{`service "h": param 3`, `; service "i": param -1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Parse([]byte(tt.js))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want an error", st)
			}
			if !errors.Is(err, ErrInvalidStrategies) {
				t.Errorf("error %q does not wrap ErrInvalidStrategies", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want a not-exist error", err)
	}
	path := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(path, []byte(`{"default_strategy": {"type": "x", "param": 1}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if !errors.Is(err, ErrInvalidStrategies) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(bad) = %v, want an ErrInvalidStrategies naming %s", err, path)
	}
}

func TestParseBounds(t *testing.T) {
	services := func(n, ops, defOps int) string {
		op := func(b *strings.Builder, n int, prefix string) {
			b.WriteString(`"operation_strategies": [`)
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(b, `{"operation": "%s%d", "type": "probabilistic", "param": 1}`, prefix, i)
			}
			b.WriteString(`]`)
		}
		var b strings.Builder
		b.WriteString(`{"default_strategy": {"type": "probabilistic", "param": 1, `)
		op(&b, defOps, "def")
		b.WriteString(`}, "service_strategies": [`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"service": "s%d", "type": "probabilistic", "param": 1, `, i)
			op(&b, ops, "op")
			b.WriteString(`}`)
		}
		b.WriteString(`]}`)
		return b.String()
	}
	for _, c := range []struct {
		name, file, want string
	}{
		{"too many services", services(MaxServices+1, 0, 0), "5001 service_strategies, more than 5000"},
		{"too many operations in a service", services(1, MaxServiceOperations+1, 0), `service "s0": 1001 operation_strategies and 0 of default_strategy, more than 1000`},
		{"the default's operations count", services(1, 600, 401), `service "s0": 600 operation_strategies and 401 of default_strategy, more than 1000`},
		{"too many in the default", services(0, 0, MaxServiceOperations+1), "default_strategy: 1001 operation_strategies, more than 1000"},
		{"too many in all", services(60, 900, 0), "54000 operation strategies in all"},
		{"too large", `{"service_strategies": []}` + strings.Repeat(" ", MaxFileBytes), "larger than 4 MiB"},
	} {
		_, err := Parse([]byte(c.file))
		if !errors.Is(err, ErrInvalidStrategies) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one saying %q", c.name, err, c.want)
		}
	}
	// At the bounds: accepted.
	for _, f := range []string{services(MaxServices, 0, 0), services(1, 500, 500), services(50, 1000, 0)} {
		if _, err := Parse([]byte(f)); err != nil {
			t.Errorf("a file at the bounds: %v", err)
		}
	}
}

// A file larger than MaxFileBytes is refused without being read whole.
func TestLoadTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(path, append([]byte(`{"service_strategies": []}`), make([]byte, MaxFileBytes)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.Is(err, ErrInvalidStrategies) || !strings.Contains(err.Error(), "larger than 4 MiB") {
		t.Errorf("Load(big) = %v", err)
	}
}
