package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The Kubernetes opt-in keys the deploy manifests carry turn pod opt-in
// on; it needs the node's name (NODE_NAME from the Downward API).
func TestKubernetesOptIn(t *testing.T) {
	f := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(f, []byte("discover:\n  enabled: true\n  k8s_opt_in_label: golens.io/instrument=true\n  k8s_namespaces: [shop]\n"), 0o644)
	t.Setenv("NODE_NAME", "")
	_, err := parseConfig([]string{"--config", f})
	var u usageError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "NODE_NAME") {
		t.Fatalf("err %v, want a usage error asking for the node name", err)
	}
	t.Setenv("NODE_NAME", "node-a")
	cfg, err := parseConfig([]string{"--config", f, "--k8s-namespace", "pay"})
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Discover
	if !d.Active() || d.K8sOptInLabel != "golens.io/instrument=true" || d.K8sNodeName != "node-a" || len(d.K8sNamespaces) != 1 || d.K8sNamespaces[0] != "pay" {
		t.Errorf("discover %+v", d)
	}
	cfg, err = parseConfig([]string{"--k8s-opt-in-label", "team=web", "--k8s-node-name", "n2", "--kubeconfig", "/k"})
	if err != nil || cfg.Discover.K8sOptInLabel != "team=web" || cfg.Discover.K8sNodeName != "n2" || cfg.Discover.Kubeconfig != "/k" {
		t.Errorf("flags: %+v, %v", cfg.Discover, err)
	}
	if _, err := parseConfig([]string{"--k8s-opt-in-label", "novalue"}); err == nil {
		t.Error("label without =value accepted")
	}
	// Off unless enabled, as the other discover rules.
	os.WriteFile(f, []byte("discover:\n  k8s_opt_in_label: a=b\n"), 0o644)
	if _, err := parseConfig([]string{"--config", f}); err == nil || !strings.Contains(err.Error(), "--discover") {
		t.Errorf("disabled file rules: %v", err)
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

// Metric resource labels: the bounded Kubernetes ones by default in
// Kubernetes mode, none otherwise; a flag or the file chooses; an
// attribute golens never sets is a usage error.
func TestMetricsResourceLabels(t *testing.T) {
	t.Setenv("NODE_NAME", "node-a")
	cfg, err := parseConfig([]string{"--pid", "1"})
	if err != nil || cfg.MetricsResourceLabels != nil {
		t.Errorf("outside Kubernetes: %v, %v", cfg.MetricsResourceLabels, err)
	}
	cfg, err = parseConfig([]string{"--k8s-opt-in-label", "a=b"})
	if err != nil || strings.Join(cfg.MetricsResourceLabels, ",") != "k8s.namespace.name,k8s.deployment.name,k8s.statefulset.name,k8s.daemonset.name,k8s.cronjob.name" {
		t.Errorf("Kubernetes default: %v, %v", cfg.MetricsResourceLabels, err)
	}
	cfg, err = parseConfig([]string{"--k8s-opt-in-label", "a=b", "--metrics-resource-labels", "k8s.namespace.name,k8s.pod.name"})
	if err != nil || strings.Join(cfg.MetricsResourceLabels, ",") != "k8s.namespace.name,k8s.pod.name" {
		t.Errorf("flag: %v, %v", cfg.MetricsResourceLabels, err)
	}
	cfg, err = parseConfig([]string{"--k8s-opt-in-label", "a=b", "--metrics-resource-labels="})
	if err != nil || len(cfg.MetricsResourceLabels) != 0 {
		t.Errorf("empty flag: %v, %v", cfg.MetricsResourceLabels, err)
	}
	f := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(f, []byte("pids: [1]\nmetrics_resource_labels: [k8s.namespace.name]\n"), 0o644)
	if cfg, err = parseConfig([]string{"--config", f}); err != nil || strings.Join(cfg.MetricsResourceLabels, ",") != "k8s.namespace.name" {
		t.Errorf("file: %v, %v", cfg.MetricsResourceLabels, err)
	}
	_, err = parseConfig([]string{"--pid", "1", "--metrics-resource-labels", "k8s.namespace"})
	var u usageError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), `"k8s.namespace"`) {
		t.Errorf("unknown attribute: %v", err)
	}
}

// The OTLP exporter's TLS, compression and timeout settings come from the
// OpenTelemetry environment variables, the traces-specific one first, and
// flags win; bad values are usage errors.
func TestOTLPEnvironment(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem")
	t.Setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem")
	t.Setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/client.key")
	t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "none")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")
	cfg, err := parseConfig([]string{"--pid", "1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OTLPCAFile != "/etc/ca.pem" || cfg.OTLPClientCert != "/etc/client.pem" || cfg.OTLPClientKey != "/etc/client.key" ||
		cfg.OTLPCompression != "gzip" || cfg.OTLPTimeout != 2500*time.Millisecond {
		t.Errorf("from the environment: %+v", cfg)
	}
	cfg, err = parseConfig([]string{"--pid", "1", "--otlp-compression", "none", "--otlp-client-cert", "/a.pem", "--otlp-client-key", "/a.key"})
	if err != nil || cfg.OTLPCompression != "none" || cfg.OTLPClientCert != "/a.pem" || cfg.OTLPClientKey != "/a.key" {
		t.Errorf("flags: %+v, %v", cfg, err)
	}
	var u usageError
	for _, bad := range [][]string{
		{"--otlp-compression", "zstd"},
		{"--otlp-client-key", ""},
	} {
		if _, err := parseConfig(append([]string{"--pid", "1"}, bad...)); !errors.As(err, &u) {
			t.Errorf("%q: %v, want a usage error", bad, err)
		}
	}
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")
	if _, err := parseConfig([]string{"--pid", "1"}); !errors.As(err, &u) {
		t.Errorf("timeout 10s (not milliseconds): %v, want a usage error", err)
	}
}

func TestDurationBucketsChecked(t *testing.T) {
	for _, b := range []string{"0.1,0.1", "0.5,0.1", "-1,1", "NaN", "0.1,NaN,1", "-Inf,1"} {
		_, err := parseConfig([]string{"--pid", "1", "--duration-buckets=" + b})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "duration bucket") {
			t.Errorf("--duration-buckets=%s: err %v, want a usage error naming the buckets", b, err)
		}
	}
	for _, b := range []string{"0.1,0.5,1", "0,1", "0.1,+Inf"} {
		if _, err := parseConfig([]string{"--pid", "1", "--duration-buckets=" + b}); err != nil {
			t.Errorf("--duration-buckets=%s: %v", b, err)
		}
	}
}
