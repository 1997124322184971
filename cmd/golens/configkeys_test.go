package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/golens/golens/agent"
)

// Every key of the config file is read: a file setting each one to a value
// other than its default gives a Config whose every field differs from the
// default (so every field has a key). A new key without a line here fails the test, so the README's
// "the same keys" stays true.
func TestEveryConfigKey(t *testing.T) {
	file := map[string]string{
		"pids":                    "[1, 2]",
		"service_name":            "shop",
		"exporter":                "otlp",
		"otlp_endpoint":           "collector:4317",
		"otlp_insecure":           "true",
		"otlp_ca_file":            "/etc/ca.pem",
		"otlp_client_cert":        "/etc/c.pem",
		"otlp_client_key":         "/etc/k.pem",
		"otlp_compression":        "gzip",
		"otlp_headers":            "{x-tenant: a}",
		"otlp_timeout":            "3s",
		"metrics_addr":            "127.0.0.1:9999",
		"export_queue_size":       "100",
		"log_level":               "debug",
		"log_format":              "json",
		"shutdown_timeout":        "9s",
		"track_goroutines":        "true",
		"cpu_yield":               "true",
		"duration_buckets":        "[0.1, 1]",
		"metrics_idle_ttl":        "1m",
		"metrics_resource_labels": "[k8s.namespace.name]",
		"sampling_strategies":     "/etc/s.json",
		"sampling_server_addr":    "127.0.0.1:5778",
		"sampling_sla_p95":        "200ms",
		"sampling_critical_ttl":   "60s",
		"otlp_metrics":            "true",
		"otlp_metrics_interval":   "30s",
		"inject_context":          "true",
		"pprof":                   "true",
		"pprof_addr":              "127.0.0.1:7070",
		"discover":                "{enabled: true, exe: [/opt/*], systemd_unit: [pay-*], k8s_opt_in_label: a=b, k8s_namespaces: [shop], kubeconfig: /etc/kc, k8s_node_name: n1}",
	}
	var yaml strings.Builder
	for k, v := range file {
		yaml.WriteString(k + ": " + v + "\n")
	}
	f := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(f, []byte(yaml.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, o := range options {
		top, _, _ := strings.Cut(o.key, ".")
		if _, ok := file[top]; !ok {
			t.Errorf("config key %q is not in this test", o.key)
		}
	}
	cfg, err := parseConfig([]string{"--config", f})
	if err != nil {
		t.Fatal(err)
	}
	def := agent.DefaultConfig()
	var check func(prefix string, got, want reflect.Value)
	check = func(prefix string, got, want reflect.Value) {
		typ := got.Type()
		for i := range typ.NumField() {
			name := prefix + typ.Field(i).Name
			switch {
			case name == "Log":
				continue // not a setting
			case typ.Field(i).Type.Kind() == reflect.Struct:
				check(name+".", got.Field(i), want.Field(i))
			case reflect.DeepEqual(got.Field(i).Interface(), want.Field(i).Interface()):
				t.Errorf("Config.%s: still the default %v", name, got.Field(i).Interface())
			}
		}
	}
	check("", reflect.ValueOf(cfg.Config), reflect.ValueOf(def))
}
