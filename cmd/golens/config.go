package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/golens/golens/agent"
	"github.com/golens/golens/discovery"
	"github.com/golens/golens/metrics"
	"github.com/golens/golens/otlp"
)

// config is what parseConfig makes of the command line, the environment and
// the config file.
type config struct {
	agent.Config
	// ignoredRules counts the config file's discover rules left off because
	// discovery is not enabled.
	ignoredRules int
}

// usageError is a mistake in how golens was invoked: exit status exitUsage.
type usageError struct{ error }

// errHelp and errVersion say parseConfig printed what was asked and golens
// has nothing more to do.
var (
	errHelp    = errors.New("help shown")
	errVersion = errors.New("version shown")
)

const usageText = `golens observes unmodified Go services with eBPF: net/http server and client
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
`

// parseConfig builds the configuration from options: the defaults, then the
// config file, then the environment, then the flags.
func parseConfig(args []string) (config, error) {
	cfg := config{Config: agent.DefaultConfig()}
	flags := agent.DefaultConfig() // what the flags say; --help's defaults
	fs := pflag.NewFlagSet("golens", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() { fmt.Fprintf(os.Stderr, usageText, fs.FlagUsages()) }
	configFile := fs.String("config", "", "YAML config file with the same keys as the flags (pids, service_name, otlp_endpoint, ...)")
	for _, o := range options {
		o.register(fs, &flags)
	}
	help := fs.BoolP("help", "h", false, "show this help")
	version := fs.Bool("version", false, "print the version and exit")

	if err := fs.Parse(args); err != nil {
		return cfg, usageError{err}
	}
	if *help {
		fs.Usage()
		return cfg, errHelp
	}
	if *version {
		fmt.Println("golens", agent.Version())
		return cfg, errVersion
	}
	if *configFile != "" {
		if err := loadFile(&cfg.Config, *configFile); err != nil {
			return cfg, usageError{err}
		}
	}
	for _, o := range options {
		if _, err := o.fromEnv(&cfg.Config, os.Getenv); err != nil {
			return cfg, usageError{err}
		}
	}
	for _, o := range options {
		if fs.Changed(o.flag) && !o.merged {
			o.copy(&cfg.Config, &flags)
		}
	}
	d, ignored, err := resolveDiscover(cfg.Discover, flags.Discover, fs.Changed("k8s-opt-in-label"))
	if err != nil {
		return cfg, usageError{err}
	}
	cfg.Discover, cfg.ignoredRules = d, ignored

	if fs.NArg() > 0 {
		return cfg, usageError{fmt.Errorf("unexpected arguments %q (targets are given with --pid, --exe or --systemd-unit)", fs.Args())}
	}
	if err := check(&cfg); err != nil {
		return cfg, usageError{err}
	}
	return cfg, nil
}

// check fills the defaults that depend on other settings and refuses
// settings that do not go together.
func check(cfg *config) error {
	if cfg.Exporter == "" {
		cfg.Exporter = "console"
		if cfg.OTLPEndpoint != "" {
			cfg.Exporter = "otlp"
		}
	}
	if err := metrics.CheckBuckets(cfg.DurationBuckets); err != nil {
		return err
	}
	if cfg.MetricsResourceLabels == nil && cfg.Discover.K8s() {
		cfg.MetricsResourceLabels = discovery.BoundedPodResourceKeys
	}
	for _, a := range cfg.MetricsResourceLabels {
		if !slices.Contains(discovery.PodResourceKeys, a) {
			return fmt.Errorf("metrics resource label %q: not one golens sets; use some of %s", a, strings.Join(discovery.PodResourceKeys, ","))
		}
	}
	if _, err := otlp.Compressor(cfg.OTLPCompression); err != nil {
		return err
	}
	if (cfg.OTLPClientCert == "") != (cfg.OTLPClientKey == "") {
		return fmt.Errorf("--otlp-client-cert and --otlp-client-key go together")
	}
	if cfg.OTLPMetrics && cfg.OTLPEndpoint == "" {
		return fmt.Errorf("--otlp-metrics needs --otlp-endpoint")
	}
	if len(cfg.PIDs) == 0 && !cfg.Discover.Active() {
		if cfg.ignoredRules > 0 {
			return errors.New("no target: the config file's discover rules apply only with --discover (or discover.enabled: true)")
		}
		return errors.New("no target: give --pid PID, --exe GLOB, --systemd-unit GLOB or --k8s-opt-in-label KEY=VALUE (see --help)")
	}
	return nil
}

// resolveDiscover merges the file's rules (when enabled) with the command
// line's and checks them; it also counts the file's rules left off.
// labelSet: --k8s-opt-in-label was given, if empty.
func resolveDiscover(file, flags agent.DiscoverConfig, labelSet bool) (agent.DiscoverConfig, int, error) {
	d := agent.DiscoverConfig{Enabled: file.Enabled, Kubeconfig: file.Kubeconfig, K8sNodeName: file.K8sNodeName}
	fileK8s := file.K8sOptInLabel != "" || len(file.K8sNamespaces) > 0
	k8s, ignored := false, 0
	if file.Enabled {
		d.Exe = append(d.Exe, file.Exe...)
		d.SystemdUnit = append(d.SystemdUnit, file.SystemdUnit...)
		d.K8sOptInLabel, d.K8sNamespaces, k8s = file.K8sOptInLabel, file.K8sNamespaces, fileK8s
	} else {
		ignored = len(file.Exe) + len(file.SystemdUnit)
		if fileK8s {
			ignored++
		}
	}
	d.Exe = append(d.Exe, flags.Exe...)
	d.SystemdUnit = append(d.SystemdUnit, flags.SystemdUnit...)
	if labelSet {
		d.K8sOptInLabel, k8s = flags.K8sOptInLabel, true
	}
	if len(flags.K8sNamespaces) > 0 {
		d.K8sNamespaces, k8s = flags.K8sNamespaces, true
	}
	if flags.Kubeconfig != "" {
		d.Kubeconfig = flags.Kubeconfig
	}
	if flags.K8sNodeName != "" {
		d.K8sNodeName = flags.K8sNodeName
	}
	if d.K8sNodeName == "" {
		d.K8sNodeName = os.Getenv("NODE_NAME")
	}
	if k8s && d.K8sOptInLabel == "" {
		d.K8sOptInLabel = discovery.DefaultOptInLabel
	}
	if d.Enabled && !d.Active() {
		return d, ignored, errors.New("--discover: no rule (give --exe GLOB, --systemd-unit GLOB, --k8s-opt-in-label KEY=VALUE, or discover: {exe: [...], systemd_unit: [...], k8s_opt_in_label: ...} in --config)")
	}
	if _, err := discovery.NewSelector(d.Exe, d.SystemdUnit); err != nil {
		return d, ignored, err
	}
	if d.K8s() {
		if _, err := discovery.NewPodSelector(d.K8sOptInLabel, d.K8sNamespaces); err != nil {
			return d, ignored, fmt.Errorf("discover: %w", err)
		}
		if d.K8sNodeName == "" {
			return d, ignored, errors.New("discover: Kubernetes pod opt-in needs this node's name: set NODE_NAME (Downward API spec.nodeName) or --k8s-node-name")
		}
	}
	return d, ignored, nil
}

// loadFile sets the fields of c that the config file at path names, by the
// options' keys; a key no option has is an error.
func loadFile(c *agent.Config, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(strings.NewReader(string(raw))).Decode(&doc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	byKey := make(map[string]option, len(options))
	for _, o := range options {
		byKey[o.key] = o
	}
	if len(doc.Content) == 0 {
		return nil
	}
	if err := loadMapping(c, byKey, "", doc.Content[0]); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// loadMapping decodes the keys of one YAML mapping, prefix naming where it
// nests ("" at the top, "discover." below discover:).
func loadMapping(c *agent.Config, byKey map[string]option, prefix string, n *yaml.Node) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an empty file, or "discover:" alone
	}
	if n.Kind != yaml.MappingNode {
		where := "the file"
		if prefix != "" {
			where = strings.TrimSuffix(prefix, ".")
		}
		return fmt.Errorf("line %d: %s: want a mapping of keys", n.Line, where)
	}
	// Merge keys (<<: *base) first: the mapping's own keys win over them.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], n.Content[i+1]; k.Tag == "!!merge" {
			if err := loadMerge(c, byKey, prefix, v); err != nil {
				return err
			}
		}
	}
	seen := make(map[string]bool)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			continue
		}
		key := prefix + k.Value
		if seen[key] {
			return fmt.Errorf("line %d: %s given twice", k.Line, key)
		}
		seen[key] = true
		o, ok := byKey[key]
		if !ok {
			if nested(byKey, key) {
				if err := loadMapping(c, byKey, key+".", v); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("line %d: unknown key %s", k.Line, key)
		}
		if err := o.decode(c, v); err != nil {
			return fmt.Errorf("line %d: %s: %w", v.Line, key, err)
		}
	}
	return nil
}

// loadMerge loads the mapping, or the list of mappings, a merge key names.
func loadMerge(c *agent.Config, byKey map[string]option, prefix string, v *yaml.Node) error {
	for v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	if v.Kind != yaml.SequenceNode {
		return loadMapping(c, byKey, prefix, v)
	}
	// Earlier mappings in the list win: load them last.
	for i := len(v.Content) - 1; i >= 0; i-- {
		if err := loadMapping(c, byKey, prefix, v.Content[i]); err != nil {
			return err
		}
	}
	return nil
}

// nested tells whether some option's key lies under key.
func nested(byKey map[string]option, key string) bool {
	for k := range byKey {
		if strings.HasPrefix(k, key+".") {
			return true
		}
	}
	return false
}

// decode sets o's field in c from the file's value.
func (o option) decode(c *agent.Config, v *yaml.Node) error {
	p := o.field(c)
	if pv, ok := p.(pflag.Value); ok {
		// A value with its own words (inject_context: on|off|auto)
		// takes them as its flag does.
		for v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		if v.Kind != yaml.ScalarNode {
			return errors.New("want one value")
		}
		return pv.Set(v.Value)
	}
	return v.Decode(p)
}
