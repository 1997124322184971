package main

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/golens/golens/agent"
	"github.com/golens/golens/discovery"
)

// option is one setting golens takes, declared once: its flag, the
// environment variables and the config-file key that also set it, its help
// text, and the Config field it fills. Its default is that field's value in
// agent.DefaultConfig. A flag wins over the environment, which wins over the
// file, which wins over the default.
type option struct {
	flag string
	// key is the config file's; a dot nests it ("discover.exe" is exe:
	// under discover:).
	key string
	// env are OpenTelemetry variables, the first one set wins; durations
	// there are milliseconds, as the OpenTelemetry spec has them.
	env  []string
	help string
	// field points into c at the Config field the option fills.
	field func(c *agent.Config) any
	// repeat: a list flag takes one value per use (--exe a --exe b), not a
	// comma-separated list.
	repeat bool
	// merged: the command line's value is merged with the file's by
	// resolveDiscover instead of replacing it.
	merged bool
}

// options is every setting, in the order --help lists them.
var options = []option{
	{flag: "pid", key: "pids", help: "instrument the process with this pid (repeatable)",
		field: func(c *agent.Config) any { return &c.PIDs }},
	{flag: "exe", key: "discover.exe", repeat: true, merged: true,
		help:  "instrument every Go process whose executable path (as /proc/PID/exe resolves it) matches this glob, those started later too; ** spans directories, a glob without / matches the base name (repeatable)",
		field: func(c *agent.Config) any { return &c.Discover.Exe }},
	{flag: "systemd-unit", key: "discover.systemd_unit", repeat: true, merged: true,
		help:  "instrument every Go process of a systemd unit matching this glob, e.g. 'pay-*.service'; a name without a dot means .service (repeatable)",
		field: func(c *agent.Config) any { return &c.Discover.SystemdUnit }},
	{flag: "discover", key: "discover.enabled",
		help:  "also apply the discover: rules (exe, systemd_unit, k8s_opt_in_label, k8s_namespaces) of the --config file",
		field: func(c *agent.Config) any { return &c.Discover.Enabled }},
	{flag: "k8s-opt-in-label", key: "discover.k8s_opt_in_label", merged: true,
		help:  "instrument the Go processes of this node's Kubernetes pods carrying this label, key=value (default " + discovery.DefaultOptInLabel + " when a --k8s-namespace is given)",
		field: func(c *agent.Config) any { return &c.Discover.K8sOptInLabel }},
	{flag: "k8s-namespace", key: "discover.k8s_namespaces", repeat: true, merged: true,
		help:  "only pods in this Kubernetes namespace opt in (repeatable; default every namespace)",
		field: func(c *agent.Config) any { return &c.Discover.K8sNamespaces }},
	{flag: "kubeconfig", key: "discover.kubeconfig", merged: true,
		help:  "kubeconfig file of the API server to watch pods on (default: in-cluster service account)",
		field: func(c *agent.Config) any { return &c.Discover.Kubeconfig }},
	{flag: "k8s-node-name", key: "discover.k8s_node_name", merged: true,
		help:  "this node's Kubernetes name: pods bound to it are watched (default $NODE_NAME)",
		field: func(c *agent.Config) any { return &c.Discover.K8sNodeName }},
	{flag: "service-name", key: "service_name",
		help:  "service.name for every target (default: the target's OTEL_SERVICE_NAME, else its executable name)",
		field: func(c *agent.Config) any { return &c.ServiceName }},
	{flag: "exporter", key: "exporter", env: []string{"OTEL_TRACES_EXPORTER"},
		help:  "span exporter: otlp or console (default: otlp when an endpoint is set, else console)",
		field: func(c *agent.Config) any { return &c.Exporter }},
	{flag: "otlp-endpoint", key: "otlp_endpoint", env: []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"},
		help:  "OTLP/gRPC collector, host:port or URL (env OTEL_EXPORTER_OTLP_ENDPOINT)",
		field: func(c *agent.Config) any { return &c.OTLPEndpoint }},
	{flag: "otlp-insecure", key: "otlp_insecure", env: []string{"OTEL_EXPORTER_OTLP_INSECURE"},
		help:  "use plaintext gRPC to the collector (env OTEL_EXPORTER_OTLP_INSECURE)",
		field: func(c *agent.Config) any { return &c.OTLPInsecure }},
	{flag: "otlp-ca-file", key: "otlp_ca_file", env: []string{"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"},
		help:  "PEM file of CAs that verify the collector's TLS certificate (env OTEL_EXPORTER_OTLP_CERTIFICATE)",
		field: func(c *agent.Config) any { return &c.OTLPCAFile }},
	{flag: "otlp-client-cert", key: "otlp_client_cert", env: []string{"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"},
		help:  "PEM certificate golens presents to a collector that requires one, mutual TLS (env OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)",
		field: func(c *agent.Config) any { return &c.OTLPClientCert }},
	{flag: "otlp-client-key", key: "otlp_client_key", env: []string{"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"},
		help:  "PEM private key of --otlp-client-cert (env OTEL_EXPORTER_OTLP_CLIENT_KEY)",
		field: func(c *agent.Config) any { return &c.OTLPClientKey }},
	{flag: "otlp-compression", key: "otlp_compression", env: []string{"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"},
		help:  "compress span exports: gzip or none (env OTEL_EXPORTER_OTLP_COMPRESSION; default none)",
		field: func(c *agent.Config) any { return &c.OTLPCompression }},
	{flag: "otlp-header", key: "otlp_headers", env: []string{"OTEL_EXPORTER_OTLP_HEADERS"},
		help:  "header sent with every export, e.g. authorization=Bearer... (repeatable)",
		field: func(c *agent.Config) any { return &c.OTLPHeaders }},
	{flag: "otlp-timeout", key: "otlp_timeout", env: []string{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"},
		help:  "timeout of one export call",
		field: func(c *agent.Config) any { return &c.OTLPTimeout }},
	{flag: "metrics-addr", key: "metrics_addr",
		help:  "address serving /metrics, /healthz and /readyz",
		field: func(c *agent.Config) any { return &c.MetricsAddr }},
	{flag: "export-queue-size", key: "export_queue_size",
		help:  "spans held for export; from half full healthy-path spans are thinned (errors and slow spans kept), beyond it spans are dropped; all counted",
		field: func(c *agent.Config) any { return &c.ExportQueue }},
	{flag: "log-level", key: "log_level", help: "debug, info, warn or error",
		field: func(c *agent.Config) any { return &c.LogLevel }},
	{flag: "log-format", key: "log_format", help: "text or json",
		field: func(c *agent.Config) any { return &c.LogFormat }},
	{flag: "shutdown-timeout", key: "shutdown_timeout", help: "how long to flush spans on SIGTERM before exiting",
		field: func(c *agent.Config) any { return &c.ShutdownGrace }},
	{flag: "cpu-yield", key: "cpu_yield",
		help:  "run golens' threads under SCHED_IDLE while it keeps up, so a waking target preempts it at once (the chained p99 on a busy node); back at normal priority for 2 s or more once its ring buffer is a quarter full or its own timers run 25 ms late. On a node whose CPUs are all busy, an idle-class golens may get no CPU for a second or more before it notices: events beyond the ring buffer's ~1 s are then lost (counted). Needs CAP_SYS_NICE (else off, with a warning)",
		field: func(c *agent.Config) any { return &c.CPUYield }},
	{flag: "track-goroutines", key: "track_goroutines",
		help:  "also link HTTP calls made from goroutines that dropped the request's context.Context (costs the target one probe hit, ~10 µs here, per go statement)",
		field: func(c *agent.Config) any { return &c.TrackGoroutines }},
	{flag: "duration-buckets", key: "duration_buckets",
		help:  "request duration histogram buckets in seconds, comma-separated (default exponential 0.0005 … 10)",
		field: func(c *agent.Config) any { return &c.DurationBuckets }},
	{flag: "metrics-idle-ttl", key: "metrics_idle_ttl",
		help:  "remove a metric label set (a route, a target that exited) not updated for this long",
		field: func(c *agent.Config) any { return &c.MetricsIdleTTL }},
	{flag: "metrics-resource-labels", key: "metrics_resource_labels",
		help:  "resource attributes added as labels to every go_app_ metric, comma-separated, dots becoming underscores (default with Kubernetes pod opt-in, --k8s-opt-in-label or discover.k8s_opt_in_label: " + strings.Join(discovery.BoundedPodResourceKeys, ",") + "; none otherwise). Also allowed: k8s.pod.name, k8s.pod.uid, k8s.container.name, k8s.node.name, k8s.replicaset.name, k8s.job.name — but pod, ReplicaSet and Job names change with every restart, rollout or run, and each makes new series. Empty for none",
		field: func(c *agent.Config) any { return &c.MetricsResourceLabels }},
	{flag: "sampling-strategies", key: "sampling_strategies",
		help:  "Jaeger sampling strategies JSON file, reloaded on change (default: follow the parent's flag, else 1000 traces/s per service; errors and slow spans always kept)",
		field: func(c *agent.Config) any { return &c.SamplingStrategies }},
	{flag: "sampling-server-addr", key: "sampling_server_addr",
		help:  "serve Jaeger's remote sampling endpoint (GET /sampling?service=NAME) on this address",
		field: func(c *agent.Config) any { return &c.SamplingServerAddr }},
	{flag: "sampling-critical-ttl", key: "sampling_critical_ttl",
		help:  "how long a trace stays kept once one of its spans was critical (error or slow)",
		field: func(c *agent.Config) any { return &c.SamplingCriticalTTL }},
	{flag: "sampling-sla-p95", key: "sampling_sla_p95",
		help:  "p95 latency a service must stay under; above it (or above 1% 5xx) its healthy-path sampling is scaled down",
		field: func(c *agent.Config) any { return &c.SamplingSLAP95 }},
	{flag: "otlp-metrics", key: "otlp_metrics",
		help:  "also push the metrics over OTLP/gRPC to the --otlp-endpoint collector",
		field: func(c *agent.Config) any { return &c.OTLPMetrics }},
	{flag: "otlp-metrics-interval", key: "otlp_metrics_interval",
		help:  "interval between OTLP metric pushes",
		field: func(c *agent.Config) any { return &c.OTLPMetricsInterval }},
	{flag: "inject-context", key: "inject_context",
		help:  "add a W3C traceparent to targets' outgoing plaintext HTTP/1.x and HTTP/2 (h2c, gRPC) requests on the wire (sk_msg), so services on other nodes continue the trace: on (refuse to start on a kernel that cannot), auto (inject where the kernel can, else one log line and run without; what the DaemonSet, chart and systemd unit use) or off. Off by default: a bare golens run does not change its targets' packets unless asked",
		field: func(c *agent.Config) any { return &c.InjectContext }},
	{flag: "pprof", key: "pprof",
		help:  "serve golens' own Go profiles at /debug/pprof/ on --pprof-addr (for debugging golens)",
		field: func(c *agent.Config) any { return &c.Pprof }},
	{flag: "pprof-addr", key: "pprof_addr",
		help:  "address of --pprof's listener; keep it on loopback: goroutine stacks show the targets' requests in flight",
		field: func(c *agent.Config) any { return &c.PprofAddr }},
}

// register declares o's flag on fs, bound to its field in c; the field's
// value there is the default --help shows.
func (o option) register(fs *pflag.FlagSet, c *agent.Config) {
	switch p := o.field(c).(type) {
	case *string:
		fs.StringVar(p, o.flag, *p, o.help)
	case *bool:
		fs.BoolVar(p, o.flag, *p, o.help)
	case *int:
		fs.IntVar(p, o.flag, *p, o.help)
	case *time.Duration:
		fs.DurationVar(p, o.flag, *p, o.help)
	case *[]int:
		fs.IntSliceVar(p, o.flag, *p, o.help)
	case *[]float64:
		fs.Float64SliceVar(p, o.flag, *p, o.help)
	case *[]string:
		if o.repeat {
			fs.StringArrayVar(p, o.flag, *p, o.help)
		} else {
			fs.StringSliceVar(p, o.flag, *p, o.help)
		}
	case *map[string]string:
		fs.StringToStringVar(p, o.flag, *p, o.help)
	case *agent.InjectMode:
		fs.Var(p, o.flag, o.help)
		// Alone, --inject-context means on.
		fs.Lookup(o.flag).NoOptDefVal = string(agent.InjectOn)
	default:
		panic(fmt.Sprintf("option --%s: no flag for a %T", o.flag, p))
	}
}

// copy sets o's field in dst to its value in src; a map's keys are added
// to dst's (headers from the file, the environment and flags add up).
func (o option) copy(dst, src *agent.Config) {
	d, s := reflect.ValueOf(o.field(dst)).Elem(), reflect.ValueOf(o.field(src)).Elem()
	if d.Kind() != reflect.Map {
		d.Set(s)
		return
	}
	if d.IsNil() {
		d.Set(reflect.MakeMap(d.Type()))
	}
	for it := s.MapRange(); it.Next(); {
		d.SetMapIndex(it.Key(), it.Value())
	}
}

// fromEnv sets o's field in c from the first of its environment variables
// that is set; false when none is.
func (o option) fromEnv(c *agent.Config, getenv func(string) string) (bool, error) {
	var name, v string
	for _, n := range o.env {
		if v = getenv(n); v != "" {
			name = n
			break
		}
	}
	if name == "" {
		return false, nil
	}
	switch p := o.field(c).(type) {
	case *string:
		*p = v
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%s=%q: not a boolean", name, v)
		}
		*p = b
	case *time.Duration:
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return false, fmt.Errorf("%s=%q: want milliseconds", name, v)
		}
		*p = time.Duration(ms) * time.Millisecond
	case *map[string]string:
		if *p == nil {
			*p = make(map[string]string)
		}
		for _, kv := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(kv, "=")
			if !ok {
				return false, fmt.Errorf("%s: %q is not key=value", name, kv)
			}
			(*p)[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
	default:
		panic(fmt.Sprintf("option --%s: no environment variable for a %T", o.flag, p))
	}
	return true, nil
}
