package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/golens/golens/metrics"
)

// FuzzConfigFile: whatever the config file holds, parseConfig returns a
// usage error or a configuration that passed every check; never a panic.
func FuzzConfigFile(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", "config.yaml")); err == nil {
		f.Add(b)
	}
	f.Add([]byte("pids: [1]\nservice_name: shop\notlp_endpoint: collector:4317\notlp_insecure: true\notlp_headers: {a: b}\n" +
		"otlp_timeout: 5s\nduration_buckets: [0.01, 0.1, 1]\nmetrics_idle_ttl: 10m\nsampling_critical_ttl: 300s\n"))
	f.Add([]byte("discover:\n  enabled: true\n  exe: [/usr/bin/*]\n  systemd_unit: [shop-*.service]\n"))
	f.Add([]byte("pids: [1]\nduration_buckets: [0.1, 0.1]\n"))
	f.Add([]byte("pids: [1]\nmetrics_resource_labels: [k8s.pod.name]\notlp_compression: zstd\n"))
	f.Add([]byte("pids: [1]\nunknown_key: 1\n"))
	f.Add([]byte("a: &a [*a]\n"))
	path := filepath.Join(f.TempDir(), "config.yaml")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := parseConfig([]string{"--config", path})
		if err != nil {
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v is not a usage error", err)
			}
			return
		}
		if err := metrics.CheckBuckets(cfg.DurationBuckets); err != nil {
			t.Fatalf("accepted buckets: %v", err)
		}
		if cfg.Exporter == "" {
			t.Fatal("no exporter chosen")
		}
	})
}
