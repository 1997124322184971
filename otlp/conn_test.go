package otlp

import "testing"

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		endpoint, target string
		plaintext, err   bool
	}{
		{"collector:4317", "collector:4317", false, false},
		{"http://collector:4317", "collector:4317", true, false},
		{"https://collector:4317", "collector:4317", false, false},
		{"https://collector:4317/v1/traces", "collector:4317", false, false},
		{"grpc://collector:4317", "collector:4317", true, false},
		{"http://", "", false, true},
		{"http://[::1", "", false, true},
	} {
		target, plaintext, err := parseEndpoint(tc.endpoint)
		if (err != nil) != tc.err || target != tc.target || plaintext != tc.plaintext {
			t.Errorf("parseEndpoint(%q) = %q, %v, %v; want %q, %v, error %v", tc.endpoint, target, plaintext, err, tc.target, tc.plaintext, tc.err)
		}
	}
}

// Spans, metrics and the flag check share one reading of the setting.
func TestCompressor(t *testing.T) {
	for _, tc := range []struct {
		setting, want string
		err           bool
	}{
		{"", "", false},
		{"none", "", false},
		{"gzip", "gzip", false},
		{"zstd", "", true},
		{"GZIP", "", true},
	} {
		got, err := Compressor(tc.setting)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("Compressor(%q) = %q, %v; want %q, error %v", tc.setting, got, err, tc.want, tc.err)
		}
	}
}
