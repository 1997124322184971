package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/golens/golens/discovery"
	"github.com/golens/golens/metrics"
	"github.com/golens/golens/otlp"
	"gopkg.in/yaml.v3"
)

// Config is everything golens can be told; defaults live in defaultConfig.
// The config file uses the yaml names; flags win over the environment, which
// wins over the file.
type Config struct {
	PIDs         []int  `yaml:"pids"`
	ServiceName  string `yaml:"service_name"`
	Exporter     string `yaml:"exporter"`
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	OTLPInsecure bool   `yaml:"otlp_insecure"`
	OTLPCAFile   string `yaml:"otlp_ca_file"`
	// OTLPClientCert and OTLPClientKey are PEM files for mutual TLS.
	OTLPClientCert  string            `yaml:"otlp_client_cert"`
	OTLPClientKey   string            `yaml:"otlp_client_key"`
	OTLPCompression string            `yaml:"otlp_compression"`
	OTLPHeaders     map[string]string `yaml:"otlp_headers"`
	OTLPTimeout     time.Duration     `yaml:"otlp_timeout"`
	MetricsAddr     string            `yaml:"metrics_addr"`
	ExportQueue     int               `yaml:"export_queue_size"`
	LogLevel        string            `yaml:"log_level"`
	LogFormat       string            `yaml:"log_format"`
	ShutdownGrace   time.Duration     `yaml:"shutdown_timeout"`
	// TrackGoroutines links calls made from goroutines that dropped the
	// request's context, at one probe hit per go statement in the target.
	TrackGoroutines bool `yaml:"track_goroutines"`
	// DurationBuckets are the request histogram buckets in seconds.
	DurationBuckets []float64 `yaml:"duration_buckets"`
	// MetricsIdleTTL removes a label set not updated for this long.
	MetricsIdleTTL time.Duration `yaml:"metrics_idle_ttl"`
	// MetricsResourceLabels are resource attributes added as labels to the
	// go_app_ metrics; nil: discovery.BoundedPodResourceKeys in Kubernetes
	// mode, none otherwise.
	MetricsResourceLabels []string `yaml:"metrics_resource_labels"`
	// SamplingStrategies is a Jaeger strategies file, hot reloaded.
	SamplingStrategies string `yaml:"sampling_strategies"`
	// SamplingServerAddr serves Jaeger's remote sampling endpoint.
	SamplingServerAddr string `yaml:"sampling_server_addr"`
	// SamplingSLAP95 is the p95 latency above which a service's healthy-path
	// sampling is scaled down (0: latency not watched, errors still are).
	SamplingSLAP95 time.Duration `yaml:"sampling_sla_p95"`
	// SamplingCriticalTTL is how long a trace stays critical once one of
	// its spans was (its later spans are kept).
	SamplingCriticalTTL time.Duration `yaml:"sampling_critical_ttl"`
	// OTLPMetrics pushes the metrics over OTLP/gRPC too.
	OTLPMetrics         bool          `yaml:"otlp_metrics"`
	OTLPMetricsInterval time.Duration `yaml:"otlp_metrics_interval"`
	// InjectContext adds traceparent to outgoing requests on the wire: off,
	// on, or auto (where the kernel can).
	InjectContext InjectMode `yaml:"inject_context"`
	// Pprof serves Go's profiles of golens itself at /debug/pprof/ on
	// PprofAddr, a listener of its own (never the metrics one).
	Pprof     bool   `yaml:"pprof"`
	PprofAddr string `yaml:"pprof_addr"`
	// Discover selects processes to instrument as they start (discover.go).
	Discover DiscoverConfig `yaml:"discover"`
}

func defaultConfig() Config {
	return Config{
		MetricsAddr:         "127.0.0.1:9464",
		PprofAddr:           "127.0.0.1:6060",
		OTLPTimeout:         10 * time.Second,
		ExportQueue:         8192,
		LogLevel:            "info",
		LogFormat:           "text",
		ShutdownGrace:       4 * time.Second,
		MetricsIdleTTL:      10 * time.Minute,
		OTLPMetricsInterval: 15 * time.Second,
		SamplingCriticalTTL: 300 * time.Second,
		// Off for a bare run: an operator who attaches golens by hand to
		// look at a service may not expect its packets to change. The
		// deployments ask for auto.
		InjectContext: InjectOff,
	}
}

// usageError is a mistake in how golens was invoked: exit status exitUsage.
type usageError struct{ error }

func parseConfig(args []string) (Config, error) {
	cfg := defaultConfig()
	fs := pflag.NewFlagSet("golens", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, `golens observes unmodified Go services with eBPF: net/http server and client
spans (linked across goroutines and, on this node, across services) over
OTLP/gRPC, GC pauses, and go_app_ Prometheus metrics, without restarting or
changing the service.

Usage:
  golens --pid PID [--pid PID...] [flags]
  golens --exe GLOB | --systemd-unit GLOB | --k8s-opt-in-label KEY=VALUE | --discover --config FILE [flags]

Needs root, or CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH.

Flags:
%s
Environment: OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT),
OTEL_EXPORTER_OTLP_INSECURE, OTEL_EXPORTER_OTLP_HEADERS (k=v,k2=v2),
OTEL_TRACES_EXPORTER (otlp|console) fill what no flag sets.
`, fs.FlagUsages())
	}
	configFile := fs.String("config", "", "YAML config file with the same keys as the flags (pids, service_name, otlp_endpoint, ...)")
	pids := fs.IntSlice("pid", nil, "instrument the process with this pid (repeatable)")
	exes := fs.StringArray("exe", nil, "instrument every Go process whose executable path (as /proc/PID/exe resolves it) matches this glob, those started later too; ** spans directories, a glob without / matches the base name (repeatable)")
	units := fs.StringArray("systemd-unit", nil, "instrument every Go process of a systemd unit matching this glob, e.g. 'pay-*.service'; a name without a dot means .service (repeatable)")
	discover := fs.Bool("discover", false, "also apply the discover: rules (exe, systemd_unit, k8s_opt_in_label, k8s_namespaces) of the --config file")
	k8sLabel := fs.String("k8s-opt-in-label", "", "instrument the Go processes of this node's Kubernetes pods carrying this label, key=value (default "+discovery.DefaultOptInLabel+" when a --k8s-namespace is given)")
	k8sNamespaces := fs.StringArray("k8s-namespace", nil, "only pods in this Kubernetes namespace opt in (repeatable; default every namespace)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file of the API server to watch pods on (default: in-cluster service account)")
	k8sNode := fs.String("k8s-node-name", "", "this node's Kubernetes name: pods bound to it are watched (default $NODE_NAME)")
	service := fs.String("service-name", "", "service.name for every target (default: the target's OTEL_SERVICE_NAME, else its executable name)")
	exporter := fs.String("exporter", "", "span exporter: otlp or console (default: otlp when an endpoint is set, else console)")
	endpoint := fs.String("otlp-endpoint", "", "OTLP/gRPC collector, host:port or URL (env OTEL_EXPORTER_OTLP_ENDPOINT)")
	insecure := fs.Bool("otlp-insecure", false, "use plaintext gRPC to the collector (env OTEL_EXPORTER_OTLP_INSECURE)")
	caFile := fs.String("otlp-ca-file", "", "PEM file of CAs that verify the collector's TLS certificate (env OTEL_EXPORTER_OTLP_CERTIFICATE)")
	clientCert := fs.String("otlp-client-cert", "", "PEM certificate golens presents to a collector that requires one, mutual TLS (env OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)")
	clientKey := fs.String("otlp-client-key", "", "PEM private key of --otlp-client-cert (env OTEL_EXPORTER_OTLP_CLIENT_KEY)")
	compression := fs.String("otlp-compression", "", "compress span exports: gzip or none (env OTEL_EXPORTER_OTLP_COMPRESSION; default none)")
	headers := fs.StringToString("otlp-header", nil, "header sent with every export, e.g. authorization=Bearer... (repeatable)")
	timeout := fs.Duration("otlp-timeout", cfg.OTLPTimeout, "timeout of one export call")
	metricsAddr := fs.String("metrics-addr", cfg.MetricsAddr, "address serving /metrics, /healthz and /readyz")
	queue := fs.Int("export-queue-size", cfg.ExportQueue, "spans held for export; from half full healthy-path spans are thinned (errors and slow spans kept), beyond it spans are dropped; all counted")
	logLevel := fs.String("log-level", cfg.LogLevel, "debug, info, warn or error")
	logFormat := fs.String("log-format", cfg.LogFormat, "text or json")
	grace := fs.Duration("shutdown-timeout", cfg.ShutdownGrace, "how long to flush spans on SIGTERM before exiting")
	trackG := fs.Bool("track-goroutines", false, "also link HTTP calls made from goroutines that dropped the request's context.Context (costs the target one probe hit, ~10 µs here, per go statement)")
	buckets := fs.Float64Slice("duration-buckets", nil, "request duration histogram buckets in seconds, comma-separated (default exponential 0.0005 … 10)")
	idleTTL := fs.Duration("metrics-idle-ttl", cfg.MetricsIdleTTL, "remove a metric label set (a route, a target that exited) not updated for this long")
	resLabels := fs.StringSlice("metrics-resource-labels", nil, "resource attributes added as labels to every go_app_ metric, comma-separated, dots becoming underscores (default with Kubernetes pod opt-in, --k8s-opt-in-label or discover.k8s_opt_in_label: "+strings.Join(discovery.BoundedPodResourceKeys, ",")+"; none otherwise). Also allowed: k8s.pod.name, k8s.pod.uid, k8s.container.name, k8s.node.name, k8s.replicaset.name, k8s.job.name — but pod, ReplicaSet and Job names change with every restart, rollout or run, and each makes new series. Empty for none")
	strategies := fs.String("sampling-strategies", "", "Jaeger sampling strategies JSON file, reloaded on change (default: follow the parent's flag, else 1000 traces/s per service; errors and slow spans always kept)")
	samplingAddr := fs.String("sampling-server-addr", "", "serve Jaeger's remote sampling endpoint (GET /sampling?service=NAME) on this address")
	criticalTTL := fs.Duration("sampling-critical-ttl", cfg.SamplingCriticalTTL, "how long a trace stays kept once one of its spans was critical (error or slow)")
	slaP95 := fs.Duration("sampling-sla-p95", 0, "p95 latency a service must stay under; above it (or above 1% 5xx) its healthy-path sampling is scaled down")
	otlpMetrics := fs.Bool("otlp-metrics", false, "also push the metrics over OTLP/gRPC to the --otlp-endpoint collector")
	otlpMetricsInterval := fs.Duration("otlp-metrics-interval", cfg.OTLPMetricsInterval, "interval between OTLP metric pushes")
	inject := InjectOff
	fs.Var(&inject, "inject-context", "add a W3C traceparent to targets' outgoing plaintext HTTP/1.x and HTTP/2 (h2c, gRPC) requests on the wire (sk_msg), so services on other nodes continue the trace: on (refuse to start on a kernel that cannot), auto (inject where the kernel can, else one log line and run without; what the DaemonSet, chart and systemd unit use) or off. Off by default: a bare golens run does not change its targets' packets unless asked")
	fs.Lookup("inject-context").NoOptDefVal = string(InjectOn)
	pprofOn := fs.Bool("pprof", false, "serve golens' own Go profiles at /debug/pprof/ on --pprof-addr (for debugging golens)")
	pprofAddr := fs.String("pprof-addr", cfg.PprofAddr, "address of --pprof's listener; keep it on loopback: goroutine stacks show the targets' requests in flight")
	help := fs.BoolP("help", "h", false, "show this help")
	version := fs.Bool("version", false, "print the version and exit")

	if err := fs.Parse(args); err != nil {
		return cfg, usageError{err}
	}
	if *help {
		fs.Usage()
		os.Exit(0)
	}
	if *version {
		fmt.Println("golens", buildVersion())
		os.Exit(0)
	}
	if *configFile != "" {
		raw, err := os.ReadFile(*configFile)
		if err != nil {
			return cfg, usageError{fmt.Errorf("config file: %w", err)}
		}
		dec := yaml.NewDecoder(strings.NewReader(string(raw)))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			return cfg, usageError{fmt.Errorf("config file %s: %w", *configFile, err)}
		}
	}
	// The environment, as the OpenTelemetry spec names it.
	if v := firstEnv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
		cfg.OTLPEndpoint = v
	}
	if v := os.Getenv("OTEL_EXPORTER_OTLP_INSECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return cfg, usageError{fmt.Errorf("OTEL_EXPORTER_OTLP_INSECURE=%q: not a boolean", v)}
		}
		cfg.OTLPInsecure = b
	}
	if v := os.Getenv("OTEL_EXPORTER_OTLP_HEADERS"); v != "" {
		if cfg.OTLPHeaders == nil {
			cfg.OTLPHeaders = make(map[string]string)
		}
		for _, kv := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(kv, "=")
			if !ok {
				return cfg, usageError{fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: %q is not key=value", kv)}
			}
			cfg.OTLPHeaders[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
	}
	for _, e := range []struct {
		to    *string
		names []string
	}{
		{&cfg.OTLPCAFile, []string{"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"}},
		{&cfg.OTLPClientCert, []string{"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"}},
		{&cfg.OTLPClientKey, []string{"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"}},
		{&cfg.OTLPCompression, []string{"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"}},
	} {
		if v := firstEnv(e.names...); v != "" {
			*e.to = v
		}
	}
	if v := firstEnv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return cfg, usageError{fmt.Errorf("OTEL_EXPORTER_OTLP_TIMEOUT=%q: want milliseconds", v)}
		}
		cfg.OTLPTimeout = time.Duration(ms) * time.Millisecond
	}
	if v := os.Getenv("OTEL_TRACES_EXPORTER"); v != "" {
		cfg.Exporter = v
	}
	// Flags win.
	set := func(name string, apply func()) {
		if fs.Changed(name) {
			apply()
		}
	}
	set("pid", func() { cfg.PIDs = *pids })
	set("service-name", func() { cfg.ServiceName = *service })
	set("exporter", func() { cfg.Exporter = *exporter })
	set("otlp-endpoint", func() { cfg.OTLPEndpoint = *endpoint })
	set("otlp-insecure", func() { cfg.OTLPInsecure = *insecure })
	set("otlp-ca-file", func() { cfg.OTLPCAFile = *caFile })
	set("otlp-client-cert", func() { cfg.OTLPClientCert = *clientCert })
	set("otlp-client-key", func() { cfg.OTLPClientKey = *clientKey })
	set("otlp-compression", func() { cfg.OTLPCompression = *compression })
	set("otlp-header", func() {
		if cfg.OTLPHeaders == nil {
			cfg.OTLPHeaders = make(map[string]string)
		}
		for k, v := range *headers {
			cfg.OTLPHeaders[k] = v
		}
	})
	set("otlp-timeout", func() { cfg.OTLPTimeout = *timeout })
	set("metrics-addr", func() { cfg.MetricsAddr = *metricsAddr })
	set("export-queue-size", func() { cfg.ExportQueue = *queue })
	set("log-level", func() { cfg.LogLevel = *logLevel })
	set("log-format", func() { cfg.LogFormat = *logFormat })
	set("shutdown-timeout", func() { cfg.ShutdownGrace = *grace })
	set("track-goroutines", func() { cfg.TrackGoroutines = *trackG })
	set("duration-buckets", func() { cfg.DurationBuckets = *buckets })
	set("metrics-idle-ttl", func() { cfg.MetricsIdleTTL = *idleTTL })
	set("metrics-resource-labels", func() { cfg.MetricsResourceLabels = *resLabels })
	set("sampling-strategies", func() { cfg.SamplingStrategies = *strategies })
	set("sampling-server-addr", func() { cfg.SamplingServerAddr = *samplingAddr })
	set("sampling-sla-p95", func() { cfg.SamplingSLAP95 = *slaP95 })
	set("sampling-critical-ttl", func() { cfg.SamplingCriticalTTL = *criticalTTL })
	set("otlp-metrics", func() { cfg.OTLPMetrics = *otlpMetrics })
	set("inject-context", func() { cfg.InjectContext = inject })
	set("pprof", func() { cfg.Pprof = *pprofOn })
	set("pprof-addr", func() { cfg.PprofAddr = *pprofAddr })
	set("otlp-metrics-interval", func() { cfg.OTLPMetricsInterval = *otlpMetricsInterval })
	set("discover", func() { cfg.Discover.Enabled = *discover })
	d, err := resolveDiscover(cfg.Discover, *exes, *units, k8sFlags{
		label: *k8sLabel, labelSet: fs.Changed("k8s-opt-in-label"),
		namespaces: *k8sNamespaces, kubeconfig: *kubeconfig, node: *k8sNode,
	})
	if err != nil {
		return cfg, usageError{err}
	}
	cfg.Discover = d

	if fs.NArg() > 0 {
		return cfg, usageError{fmt.Errorf("unexpected arguments %q (targets are given with --pid, --exe or --systemd-unit)", fs.Args())}
	}
	if cfg.Exporter == "" {
		cfg.Exporter = "console"
		if cfg.OTLPEndpoint != "" {
			cfg.Exporter = "otlp"
		}
	}
	if err := metrics.CheckBuckets(cfg.DurationBuckets); err != nil {
		return cfg, usageError{err}
	}
	if cfg.MetricsResourceLabels == nil && cfg.Discover.k8s {
		cfg.MetricsResourceLabels = discovery.BoundedPodResourceKeys
	}
	for _, a := range cfg.MetricsResourceLabels {
		if !slices.Contains(discovery.PodResourceKeys, a) {
			return cfg, usageError{fmt.Errorf("metrics resource label %q: not one golens sets; use some of %s", a, strings.Join(discovery.PodResourceKeys, ","))}
		}
	}
	if _, err := otlp.Compressor(cfg.OTLPCompression); err != nil {
		return cfg, usageError{err}
	}
	if (cfg.OTLPClientCert == "") != (cfg.OTLPClientKey == "") {
		return cfg, usageError{fmt.Errorf("--otlp-client-cert and --otlp-client-key go together")}
	}
	if cfg.OTLPMetrics && cfg.OTLPEndpoint == "" {
		return cfg, usageError{fmt.Errorf("--otlp-metrics needs --otlp-endpoint")}
	}
	if len(cfg.PIDs) == 0 && !cfg.Discover.active() {
		return cfg, usageError{cfg.Discover.noTarget()}
	}
	return cfg, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// InjectMode is --inject-context: whether golens adds a traceparent to the
// targets' outgoing requests on the wire.
type InjectMode string

const (
	// InjectOff leaves the targets' traffic as it is (the default of a
	// bare golens run).
	InjectOff InjectMode = "off"
	// InjectOn injects, and refuses to start on a kernel that cannot.
	InjectOn InjectMode = "on"
	// InjectAuto injects where the kernel can, and otherwise runs without,
	// saying so in one line (what the deployments use).
	InjectAuto InjectMode = "auto"
)

// parseInjectMode takes on, off, auto, or a boolean as the flag was
// before it had a mode (--inject-context=true).
func parseInjectMode(s string) (InjectMode, error) {
	switch m := InjectMode(strings.ToLower(strings.TrimSpace(s))); m {
	case InjectOff, InjectOn, InjectAuto:
		return m, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return "", fmt.Errorf("inject-context %q: want on, off or auto", s)
	}
	if b {
		return InjectOn, nil
	}
	return InjectOff, nil
}

// String, Set and Type make *InjectMode a pflag.Value.
func (m *InjectMode) String() string { return string(*m) }

// Set parses a flag value.
func (m *InjectMode) Set(s string) error {
	v, err := parseInjectMode(s)
	if err == nil {
		*m = v
	}
	return err
}

// Type names the flag's values in --help.
func (m *InjectMode) Type() string { return "on|off|auto" }

// UnmarshalYAML takes inject_context: on, off, auto, true or false.
func (m *InjectMode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: inject_context: want on, off or auto", n.Line)
	}
	v, err := parseInjectMode(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*m = v
	return nil
}
