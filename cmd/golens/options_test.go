package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golens/golens/agent"
)

// Every option has a flag, a file key and help; no flag, key or
// environment variable belongs to two options; and every Config field
// (but the logger) is filled by exactly one option.
func TestOptionTable(t *testing.T) {
	flags, keys, envs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var c agent.Config
	fields := map[uintptr]string{}
	for _, o := range options {
		if o.flag == "" || o.key == "" || o.help == "" || o.field == nil {
			t.Errorf("option %+v: want a flag, a key, help and a field", o)
			continue
		}
		if flags[o.flag] || keys[o.key] {
			t.Errorf("--%s / %s: declared twice", o.flag, o.key)
		}
		flags[o.flag], keys[o.key] = true, true
		for _, e := range o.env {
			if envs[e] {
				t.Errorf("%s: read by two options", e)
			}
			envs[e] = true
		}
		p := reflect.ValueOf(o.field(&c)).Pointer()
		if prev, ok := fields[p]; ok {
			t.Errorf("--%s and --%s fill the same field", prev, o.flag)
		}
		fields[p] = o.flag
	}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			switch {
			case f.Name == "Log":
			case f.Type.Kind() == reflect.Struct:
				walk(prefix+f.Name+".", v.Field(i))
			default:
				if _, ok := fields[v.Field(i).Addr().Pointer()]; !ok {
					t.Errorf("Config.%s%s: no option fills it", prefix, f.Name)
				}
			}
		}
	}
	walk("", reflect.ValueOf(&c).Elem())
	for _, reserved := range []string{"config", "help", "version"} {
		if flags[reserved] {
			t.Errorf("--%s is golens' own, not an option", reserved)
		}
	}
}

// A flag wins over the environment, the environment over the file, the
// file over the default: for a string, a boolean, a duration (milliseconds
// in the environment) and headers (which add up, the later source winning
// a key).
func TestPrecedence(t *testing.T) {
	f := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(f, []byte("pids: [1]\notlp_endpoint: file:4317\notlp_insecure: false\notlp_timeout: 3s\notlp_headers: {a: file, b: file}\n"), 0o644)
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "env:4317",
		"OTEL_EXPORTER_OTLP_INSECURE": "true",
		"OTEL_EXPORTER_OTLP_TIMEOUT":  "2000",
		"OTEL_EXPORTER_OTLP_HEADERS":  "b=env,c=env",
	}
	flagArgs := []string{"--otlp-endpoint", "flag:4317", "--otlp-insecure=false", "--otlp-timeout", "1s", "--otlp-header", "c=flag"}
	type want struct {
		endpoint string
		insecure bool
		timeout  time.Duration
		headers  string
	}
	for _, c := range []struct {
		name             string
		file, env, flags bool
		want             want
	}{
		{"default", false, false, false, want{"", false, 10 * time.Second, ""}},
		{"file", true, false, false, want{"file:4317", false, 3 * time.Second, "a=file,b=file"}},
		{"env over file", true, true, false, want{"env:4317", true, 2 * time.Second, "a=file,b=env,c=env"}},
		{"flags over env", true, true, true, want{"flag:4317", false, time.Second, "a=file,b=env,c=flag"}},
		{"flags over default", false, false, true, want{"flag:4317", false, time.Second, "c=flag"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range env {
				if !c.env {
					v = ""
				}
				t.Setenv(k, v)
			}
			args := []string{"--pid", "1"}
			if c.file {
				args = append(args, "--config", f)
			}
			if c.flags {
				args = append(args, flagArgs...)
			}
			cfg, err := parseConfig(args)
			if err != nil {
				t.Fatal(err)
			}
			var hs []string
			for _, k := range []string{"a", "b", "c"} {
				if v, ok := cfg.OTLPHeaders[k]; ok {
					hs = append(hs, k+"="+v)
				}
			}
			got := want{cfg.OTLPEndpoint, cfg.OTLPInsecure, cfg.OTLPTimeout, strings.Join(hs, ",")}
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// The file's keys nest only where options nest, and a key is given once.
func TestConfigFileShape(t *testing.T) {
	f := filepath.Join(t.TempDir(), "config.yaml")
	for _, c := range []struct{ yaml, wantErr string }{
		{"pids: [1]\ndiscover:\n  bogus: 1\n", "unknown key discover.bogus"},
		{"pids: [1]\ndiscover: [a]\n", "discover: want a mapping"},
		{"[1, 2]\n", "want a mapping"},
		{"pids: [1]\npids: [2]\n", "pids given twice"},
		{"pids: [1]\ninject_context: [on]\n", "inject_context: want one value"},
		{"pids: [1]\ndiscover:\n", ""},
		{"base: &b [1]\n", "unknown key base"},
		{"pids: [1]\n<<: {service_name: x, bogus: 1}\n", "unknown key bogus"},
	} {
		os.WriteFile(f, []byte(c.yaml), 0o644)
		_, err := parseConfig([]string{"--config", f})
		if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.wantErr)
		}
	}
	// Merge keys, as YAML has them: the mapping's own keys win.
	os.WriteFile(f, []byte("pids: [1]\ndiscover: {<<: {kubeconfig: /k}}\n<<: [{service_name: first, log_level: warn}, {service_name: second, log_format: json}]\nlog_level: error\n"), 0o644)
	cfg, err := parseConfig([]string{"--config", f})
	if err != nil || cfg.ServiceName != "first" || cfg.LogLevel != "error" || cfg.LogFormat != "json" || cfg.Discover.Kubeconfig != "/k" {
		t.Errorf("merge keys: %+v, %v", cfg.Config, err)
	}
}
