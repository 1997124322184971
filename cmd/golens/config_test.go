package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The Kubernetes opt-in keys the deploy manifests carry are refused with a
// clear usage error until pod discovery exists, never silently ignored.
func TestKubernetesOptInRefused(t *testing.T) {
	f := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(f, []byte("discover:\n  enabled: true\n  k8s_opt_in_label: golens.io/instrument=true\n"), 0o644)
	_, err := parseConfig([]string{"--config", f})
	var u usageError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "not implemented yet") {
		t.Fatalf("err %v, want a usage error saying pod opt-in is not implemented", err)
	}
}

// Flags win over the file, the file over the defaults.
func TestConfigPrecedence(t *testing.T) {
	f := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(f, []byte("pids: [1]\nmetrics_addr: 127.0.0.1:1111\nservice_name: fromfile\n"), 0o644)
	cfg, err := parseConfig([]string{"--config", f, "--service-name", "fromflag"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServiceName != "fromflag" || cfg.MetricsAddr != "127.0.0.1:1111" || len(cfg.PIDs) != 1 || cfg.Exporter != "console" {
		t.Errorf("config %+v", cfg)
	}
	if _, err := parseConfig([]string{"--config", f, "--bogus"}); err == nil {
		t.Error("unknown flag accepted")
	}
	os.WriteFile(f, []byte("pids: [1]\nno_such_key: 1\n"), 0o644)
	if _, err := parseConfig([]string{"--config", f}); err == nil || !strings.Contains(err.Error(), "no_such_key") {
		t.Errorf("unknown config key: %v", err)
	}
}
