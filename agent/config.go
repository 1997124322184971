package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Config is everything the agent can be told. cmd/golens fills it from
// flags, the environment and a config file; DefaultConfig holds the
// defaults.
type Config struct {
	// Log receives the agent's log lines; nil means slog.Default().
	Log *slog.Logger

	PIDs         []int
	ServiceName  string
	Exporter     string // otlp or console
	OTLPEndpoint string
	OTLPInsecure bool
	OTLPCAFile   string
	// OTLPClientCert and OTLPClientKey are PEM files for mutual TLS.
	OTLPClientCert  string
	OTLPClientKey   string
	OTLPCompression string
	OTLPHeaders     map[string]string
	OTLPTimeout     time.Duration
	MetricsAddr     string
	ExportQueue     int
	LogLevel        string
	LogFormat       string
	ShutdownGrace   time.Duration
	// TrackGoroutines links calls made from goroutines that dropped the
	// request's context, at one probe hit per go statement in the target.
	TrackGoroutines bool
	// CPUYield runs golens under SCHED_IDLE while it keeps up, at normal
	// priority while behind (needs CAP_SYS_NICE for the way back).
	CPUYield bool
	// DurationBuckets are the request histogram buckets in seconds.
	DurationBuckets []float64
	// MetricsIdleTTL removes a label set not updated for this long.
	MetricsIdleTTL time.Duration
	// MetricsResourceLabels are resource attributes added as labels to the
	// go_app_ metrics.
	MetricsResourceLabels []string
	// SamplingStrategies is a Jaeger strategies file, hot reloaded.
	SamplingStrategies string
	// SamplingServerAddr serves Jaeger's remote sampling endpoint.
	SamplingServerAddr string
	// SamplingSLAP95 is the p95 latency above which a service's healthy-path
	// sampling is scaled down (0: latency not watched, errors still are).
	SamplingSLAP95 time.Duration
	// SamplingCriticalTTL is how long a trace stays critical once one of
	// its spans was (its later spans are kept).
	SamplingCriticalTTL time.Duration
	// OTLPMetrics pushes the metrics over OTLP/gRPC too.
	OTLPMetrics         bool
	OTLPMetricsInterval time.Duration
	// InjectContext adds traceparent to outgoing requests on the wire: off,
	// on, or auto (where the kernel can).
	InjectContext InjectMode
	// Pprof serves Go's profiles of golens itself at /debug/pprof/ on
	// PprofAddr, a listener of its own (never the metrics one).
	Pprof     bool
	PprofAddr string
	// Discover selects processes to instrument as they start.
	Discover DiscoverConfig
}

// DefaultConfig is the configuration of a bare golens run.
func DefaultConfig() Config {
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

// DiscoverConfig selects processes to instrument as they start: by
// executable, by systemd unit, or by Kubernetes pod label.
type DiscoverConfig struct {
	// Enabled applies the config file's rules (cmd/golens merges them with
	// the command line's).
	Enabled     bool
	Exe         []string // executable path globs
	SystemdUnit []string // systemd unit globs
	// Kubernetes pod opt-in: the Go processes of this node's pods carrying
	// the label (key=value) and, when namespaces are listed, in one of them.
	// Pod opt-in is on when K8sOptInLabel is set.
	K8sOptInLabel string
	K8sNamespaces []string
	// Kubeconfig is the API server's kubeconfig file; "" means in-cluster
	// (the pod's service account).
	Kubeconfig string
	// K8sNodeName is this node's name: pods bound to it are watched.
	K8sNodeName string
}

// K8s tells whether Kubernetes pod opt-in is on.
func (d DiscoverConfig) K8s() bool { return d.K8sOptInLabel != "" }

// Active tells whether any rule selects processes.
func (d DiscoverConfig) Active() bool { return len(d.Exe)+len(d.SystemdUnit) > 0 || d.K8s() }

// InjectMode is whether golens adds a traceparent to the targets' outgoing
// requests on the wire.
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

// ParseInjectMode takes on, off, auto, or a boolean as the flag was before
// it had a mode (--inject-context=true).
func ParseInjectMode(s string) (InjectMode, error) {
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

// String returns the mode's name.
func (m *InjectMode) String() string { return string(*m) }

// Set parses a mode as ParseInjectMode does (with Type, a pflag.Value).
func (m *InjectMode) Set(s string) error {
	v, err := ParseInjectMode(s)
	if err == nil {
		*m = v
	}
	return err
}

// Type names the values in --help.
func (m *InjectMode) Type() string { return "on|off|auto" }

// ErrUsage marks what a restart cannot fix: a setting the agent cannot use,
// or no target that can be instrumented (cmd/golens exits 64).
var ErrUsage = errors.New("bad usage")

// ErrKernel marks a kernel that lacks a feature golens needs, or one
// --inject-context=on needs (cmd/golens exits 69).
var ErrKernel = errors.New("kernel unsupported")

// classed is an error of a class (ErrUsage, ErrKernel) that keeps its own
// text.
type classed struct{ class, err error }

func (e classed) Error() string   { return e.err.Error() }
func (e classed) Unwrap() []error { return []error{e.class, e.err} }

func usage(err error) error { return classed{ErrUsage, err} }
