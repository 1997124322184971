package deploy

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/golens/golens/buildinfo"
	"github.com/golens/golens/sampler"
)

// object is one Kubernetes object of a manifest.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	node *yaml.Node
	from string // file
}

// decode decodes the whole object into v.
func (o object) decode(t *testing.T, v any) {
	t.Helper()
	if err := o.node.Decode(v); err != nil {
		t.Fatalf("%s %s/%s (%s): %v", o.Kind, o.Metadata.Namespace, o.Metadata.Name, o.from, err)
	}
}

func (o object) String() string { return o.Kind + " " + o.Metadata.Name }

// parseObjects reads every YAML document of data.
func parseObjects(t *testing.T, from string, data []byte) []object {
	t.Helper()
	var objs []object
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", from, err)
		}
		if len(n.Content) == 0 || n.Content[0].Tag == "!!null" {
			continue // an empty document
		}
		o := object{node: &n, from: from}
		if err := n.Decode(&o); err != nil {
			t.Fatalf("%s: %v", from, err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("%s: a document without apiVersion, kind or metadata.name", from)
		}
		objs = append(objs, o)
	}
}

// Typed views of the fields the tests check; the YAML names are the API's.

type keyRef struct {
	Name     string `yaml:"name"`
	Key      string `yaml:"key"`
	Optional bool   `yaml:"optional"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		ConfigMapKeyRef  *keyRef `yaml:"configMapKeyRef"`
		SecretKeyRef     *keyRef `yaml:"secretKeyRef"`
		ResourceFieldRef *struct {
			Resource string `yaml:"resource"`
		} `yaml:"resourceFieldRef"`
	} `yaml:"valueFrom"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
	PeriodSeconds int `yaml:"periodSeconds"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []envVar `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		Privileged               *bool `yaml:"privileged"`
		RunAsUser                *int  `yaml:"runAsUser"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Add  []string `yaml:"add"`
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type daemonSet struct {
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				ServiceAccountName string `yaml:"serviceAccountName"`
				HostPID            bool   `yaml:"hostPID"`
				HostNetwork        bool   `yaml:"hostNetwork"`
				HostIPC            bool   `yaml:"hostIPC"`
				Tolerations        []struct {
					Key      string `yaml:"key"`
					Operator string `yaml:"operator"`
					Effect   string `yaml:"effect"`
				} `yaml:"tolerations"`
				Containers     []container `yaml:"containers"`
				InitContainers []container `yaml:"initContainers"`
				Volumes        []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
					HostPath *struct {
						Path string `yaml:"path"`
					} `yaml:"hostPath"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type policyRule struct {
	APIGroups       []string `yaml:"apiGroups"`
	Resources       []string `yaml:"resources"`
	Verbs           []string `yaml:"verbs"`
	ResourceNames   []string `yaml:"resourceNames"`
	NonResourceURLs []string `yaml:"nonResourceURLs"`
}

type clusterRole struct {
	Rules           []policyRule `yaml:"rules"`
	AggregationRule any          `yaml:"aggregationRule"`
}

type roleBinding struct {
	RoleRef struct {
		APIGroup string `yaml:"apiGroup"`
		Kind     string `yaml:"kind"`
		Name     string `yaml:"name"`
	} `yaml:"roleRef"`
	Subjects []struct {
		Kind      string `yaml:"kind"`
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"subjects"`
}

type networkPolicy struct {
	Spec struct {
		PodSelector struct {
			MatchLabels      map[string]string `yaml:"matchLabels"`
			MatchExpressions []any             `yaml:"matchExpressions"`
		} `yaml:"podSelector"`
		PolicyTypes []string `yaml:"policyTypes"`
		Ingress     []struct {
			From []struct {
				NamespaceSelector *labelSelector `yaml:"namespaceSelector"`
				PodSelector       *labelSelector `yaml:"podSelector"`
				IPBlock           *struct {
					CIDR string `yaml:"cidr"`
				} `yaml:"ipBlock"`
			} `yaml:"from"`
			Ports []struct {
				Port     string `yaml:"port"`
				Protocol string `yaml:"protocol"`
			} `yaml:"ports"`
		} `yaml:"ingress"`
	} `yaml:"spec"`
}

type labelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []any             `yaml:"matchExpressions"`
}

// empty: the selector matches everything.
func (s *labelSelector) empty() bool {
	return s != nil && len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

type configMap struct {
	Data map[string]string `yaml:"data"`
}

// agentConfig is the part of golens' config file the manifests set.
type agentConfig struct {
	Discover struct {
		Enabled       bool     `yaml:"enabled"`
		K8sOptInLabel string   `yaml:"k8s_opt_in_label"`
		K8sNamespaces []string `yaml:"k8s_namespaces"`
		Exe           []string `yaml:"exe"`
		SystemdUnit   []string `yaml:"systemd_unit"`
	} `yaml:"discover"`
	MetricsAddr        string `yaml:"metrics_addr"`
	SamplingServerAddr string `yaml:"sampling_server_addr"`
	Pprof              bool   `yaml:"pprof"`
	PprofAddr          string `yaml:"pprof_addr"`
	SamplingStrategies string `yaml:"sampling_strategies"`
	InjectContext      string `yaml:"inject_context"`
}

// wantAgent is what a rendering of golens for Kubernetes must hold.
type wantAgent struct {
	namespace string
	name      string // DaemonSet, ConfigMap, ClusterRole(Binding)
	account   string // ServiceAccount
	image     string
	optIn     string
	inject    string // inject_context in config.yaml; "" for auto, the default
}

// rbacGrant is the whole of what golens may do on the API server:
// apiGroup/resource:verb.
var rbacGrant = []string{"/pods:get", "/pods:list", "/pods:watch", "apps/replicasets:get", "batch/jobs:get"}

// find returns the only object of kind, or fails.
func find(t *testing.T, objs []object, kind string) object {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s, have %d (%v)", kind, len(found), objs)
	}
	return found[0]
}

// checkAgent holds a set of objects to what golens on Kubernetes needs, and
// to nothing more: used for deploy/kubernetes and for the Helm chart.
func checkAgent(t *testing.T, objs []object, w wantAgent) daemonSet {
	t.Helper()
	for _, o := range objs {
		cluster := o.Kind == "Namespace" || o.Kind == "ClusterRole" || o.Kind == "ClusterRoleBinding"
		if !cluster && o.Metadata.Namespace != w.namespace {
			t.Errorf("%s is in namespace %q, want %q", o, o.Metadata.Namespace, w.namespace)
		}
	}
	sa := find(t, objs, "ServiceAccount")
	if sa.Metadata.Name != w.account {
		t.Errorf("ServiceAccount %q, want %q", sa.Metadata.Name, w.account)
	}

	// RBAC: read pods, get ReplicaSets; nothing else.
	var cr clusterRole
	cro := find(t, objs, "ClusterRole")
	cro.decode(t, &cr)
	var grant []string
	for _, r := range cr.Rules {
		if len(r.ResourceNames)+len(r.NonResourceURLs) > 0 {
			t.Errorf("ClusterRole rule %+v: resourceNames/nonResourceURLs are not expected", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					grant = append(grant, g+"/"+res+":"+v)
				}
			}
		}
	}
	if cr.AggregationRule != nil {
		t.Errorf("ClusterRole aggregates other roles")
	}
	if !sameSet(grant, rbacGrant) {
		t.Errorf("ClusterRole grants %q, want exactly %q", grant, rbacGrant)
	}
	var crb roleBinding
	crbo := find(t, objs, "ClusterRoleBinding")
	crbo.decode(t, &crb)
	if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != cro.Metadata.Name || crb.RoleRef.APIGroup != "rbac.authorization.k8s.io" {
		t.Errorf("ClusterRoleBinding refers to %+v, want ClusterRole %s", crb.RoleRef, cro.Metadata.Name)
	}
	if len(crb.Subjects) != 1 || crb.Subjects[0].Kind != "ServiceAccount" || crb.Subjects[0].Name != w.account || crb.Subjects[0].Namespace != w.namespace {
		t.Errorf("ClusterRoleBinding subjects %+v, want ServiceAccount %s/%s only", crb.Subjects, w.namespace, w.account)
	}

	// The DaemonSet.
	var ds daemonSet
	dso := find(t, objs, "DaemonSet")
	dso.decode(t, &ds)
	if dso.Metadata.Name != w.name {
		t.Errorf("DaemonSet %q, want %q", dso.Metadata.Name, w.name)
	}
	pod := ds.Spec.Template.Spec
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector label %s=%s not on the pod template", k, v)
		}
	}
	if !pod.HostPID {
		t.Error("hostPID is not set: golens must see the node's processes")
	}
	if pod.HostNetwork || pod.HostIPC {
		t.Error("hostNetwork/hostIPC set: golens needs neither")
	}
	if pod.ServiceAccountName != w.account {
		t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, w.account)
	}
	// Every node: one toleration that matches every taint.
	everyNode := false
	for _, tol := range pod.Tolerations {
		everyNode = everyNode || (tol.Operator == "Exists" && tol.Key == "" && tol.Effect == "")
	}
	if !everyNode {
		t.Errorf("tolerations %+v do not let golens run on every node", pod.Tolerations)
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("want one container, have %d (+%d init)", len(pod.Containers), len(pod.InitContainers))
	}
	c := pod.Containers[0]
	if c.Image != w.image {
		t.Errorf("image %q, want %q (what `make image` tags)", c.Image, w.image)
	}
	sc := c.SecurityContext
	if sc.Privileged == nil || *sc.Privileged {
		t.Error("securityContext.privileged must be false, and said")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation must be false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem must be true: golens writes no file")
	}
	var caps []string
	for _, c := range agentCaps {
		caps = append(caps, strings.TrimPrefix(c, "CAP_"))
	}
	if !sameSet(sc.Capabilities.Add, caps) {
		t.Errorf("capabilities.add %q, want exactly %q", sc.Capabilities.Add, caps)
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("capabilities.drop %q, want [ALL]", sc.Capabilities.Drop)
	}

	// Probes on the metrics port, where --metrics-addr listens.
	port := map[string]int{}
	for _, p := range c.Ports {
		port[p.Name] = p.ContainerPort
	}
	for _, p := range []struct {
		name, path string
		probe      *probe
	}{{"livenessProbe", "/healthz", c.LivenessProbe}, {"readinessProbe", "/readyz", c.ReadinessProbe}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no %s (HTTP GET %s)", p.name, p.path)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || port[p.probe.HTTPGet.Port] != 9464 {
			t.Errorf("%s: GET %s on port %q, want %s on 9464", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port, p.path)
		}
	}
	for _, k := range []string{"cpu", "memory"} {
		if c.Resources.Requests[k] == "" || c.Resources.Limits[k] == "" {
			t.Errorf("resources: %s request or limit missing (%+v)", k, c.Resources)
		}
	}

	// Environment: NODE_NAME and POD_IP from the Downward API, the OTLP
	// endpoint from the ConfigMap.
	env := map[string]envVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for name, field := range map[string]string{"NODE_NAME": "spec.nodeName", "POD_IP": "status.podIP"} {
		if e := env[name]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != field {
			t.Errorf("%s is not the Downward API's %s: %+v", name, field, e)
		}
	}

	// Exposure: /metrics, /healthz and /readyz on the pod IP only (the
	// kubelet's probes reach it there), never a wildcard; pprof off; who
	// may connect is a NetworkPolicy's opt-in.
	wantAddr := fmt.Sprintf("--metrics-addr=[$(POD_IP)]:%d", port["metrics"])
	var addrArgs []string
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--metrics-addr") || strings.HasPrefix(a, "--sampling-server-addr") || strings.HasPrefix(a, "--pprof") {
			addrArgs = append(addrArgs, a)
		}
	}
	if !slices.Equal(addrArgs, []string{wantAddr}) {
		t.Errorf("listener flags %q, want only %q", addrArgs, wantAddr)
	}
	var np networkPolicy
	npo := find(t, objs, "NetworkPolicy")
	npo.decode(t, &np)
	if len(np.Spec.PodSelector.MatchLabels) == 0 || len(np.Spec.PodSelector.MatchExpressions) > 0 {
		t.Errorf("NetworkPolicy %s podSelector %+v: want the agent's labels", npo.Metadata.Name, np.Spec.PodSelector)
	}
	for k, v := range np.Spec.PodSelector.MatchLabels {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("NetworkPolicy %s selects %s=%s, not on the agent's pods", npo.Metadata.Name, k, v)
		}
	}
	if !slices.Equal(np.Spec.PolicyTypes, []string{"Ingress"}) {
		t.Errorf("NetworkPolicy policyTypes %q, want [Ingress]", np.Spec.PolicyTypes)
	}
	for i, r := range np.Spec.Ingress {
		if len(r.Ports) != 1 || r.Ports[0].Port != "metrics" || r.Ports[0].Protocol != "TCP" {
			t.Errorf("NetworkPolicy ingress rule %d: ports %+v, want the metrics port only", i, r.Ports)
		}
		if len(r.From) == 0 {
			t.Errorf("NetworkPolicy ingress rule %d admits every peer", i)
		}
		for _, p := range r.From {
			if p.IPBlock != nil || (p.NamespaceSelector == nil && p.PodSelector == nil) ||
				(p.NamespaceSelector.empty() && p.PodSelector == nil) || (p.NamespaceSelector == nil && p.PodSelector.empty()) {
				t.Errorf("NetworkPolicy ingress rule %d: peer %+v is not a labelled opt-in", i, p)
			}
		}
	}
	var cm configMap
	cmo := find(t, objs, "ConfigMap")
	cmo.decode(t, &cm)
	if e := env["OTEL_EXPORTER_OTLP_ENDPOINT"]; e.ValueFrom == nil || e.ValueFrom.ConfigMapKeyRef == nil {
		t.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT does not come from the ConfigMap: %+v", e)
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.ConfigMapKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.ConfigMapKeyRef
		if ref.Name != cmo.Metadata.Name || cm.Data[ref.Key] == "" {
			t.Errorf("%s refers to ConfigMap %s key %q, which is not there", e.Name, ref.Name, ref.Key)
		}
	}

	// Volumes: the ConfigMap at /etc/golens, the host's cgroup tree
	// read-only; no other host path.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.HostPath != nil && !m.ReadOnly {
				t.Errorf("host path %s is mounted writable", v.HostPath.Path)
			}
		}
	}
	configDir := ""
	for _, v := range pod.Volumes {
		switch {
		case v.ConfigMap != nil && v.ConfigMap.Name == cmo.Metadata.Name:
			configDir = mounts[v.Name]
		case v.HostPath != nil && v.HostPath.Path != "/sys/fs/cgroup":
			t.Errorf("host path %s mounted: golens needs only /sys/fs/cgroup", v.HostPath.Path)
		case v.HostPath != nil && mounts[v.Name] != "/sys/fs/cgroup":
			t.Errorf("/sys/fs/cgroup mounted at %q", mounts[v.Name])
		}
	}
	if configDir == "" {
		t.Fatalf("the ConfigMap is not mounted")
	}
	cfgArg := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			cfgArg = v
		}
	}
	if cfgArg != configDir+"/config.yaml" {
		t.Errorf("--config=%q, want the ConfigMap's config.yaml under %s", cfgArg, configDir)
	}

	// The config file: opt-in discovery, metrics on the probes' port, the
	// sampling file the ConfigMap carries (and golens' sampler accepts).
	var cfg agentConfig
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if !cfg.Discover.Enabled || cfg.Discover.K8sOptInLabel != w.optIn {
		t.Errorf("config.yaml discover = %+v, want enabled with opt-in label %q", cfg.Discover, w.optIn)
	}
	if len(cfg.Discover.Exe)+len(cfg.Discover.SystemdUnit) > 0 {
		t.Errorf("config.yaml selects processes by exe or unit too: %+v", cfg.Discover)
	}
	if cfg.MetricsAddr != "" || cfg.SamplingServerAddr != "" || cfg.Pprof || cfg.PprofAddr != "" {
		t.Errorf("config.yaml sets listeners (metrics_addr %q, sampling_server_addr %q, pprof %v %q): the pod IP comes from the Downward API in the args",
			cfg.MetricsAddr, cfg.SamplingServerAddr, cfg.Pprof, cfg.PprofAddr)
	}
	// On by default where the node's kernel can inject (auto), never
	// refusing to start where it cannot.
	if want := cmp.Or(w.inject, "auto"); cfg.InjectContext != want {
		t.Errorf("config.yaml inject_context %q, want %q", cfg.InjectContext, want)
	}
	if cfg.SamplingStrategies != configDir+"/sampling.json" {
		t.Errorf("sampling_strategies %q, want %s/sampling.json", cfg.SamplingStrategies, configDir)
	}
	if _, err := sampler.Parse([]byte(cm.Data["sampling.json"])); err != nil {
		t.Errorf("sampling.json: %v", err)
	}
	return ds
}

// kubecheck decodes manifests strictly into the Kubernetes API's Go types
// (scripts/kubecheck): an unknown or misplaced field, or a value of the wrong
// shape, fails.
func kubecheck(t *testing.T, files ...string) {
	t.Helper()
	out := run(t, filepath.Join(repoRoot(t), "scripts/kubecheck"), nil, "go", append([]string{"run", "."}, files...)...)
	t.Logf("kubecheck: %d objects decoded strictly", strings.Count(out, "\nok ")+1)
}

// TestKubernetesManifests checks deploy/kubernetes. kubectl cannot check
// them without an API server (even --dry-run=client asks one for its
// resource types), so they are decoded strictly into the API's Go types and
// held to what golens needs; TestServerDryRun gives them to a real API
// server, and the end-to-end Kubernetes test applies its RBAC for real.
func TestKubernetesManifests(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy/kubernetes")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	kubecheck(t, files...)
	// The check is strict: a misspelt field fails it.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	ds := readFile(t, filepath.Join(dir, "daemonset.yaml"))
	if err := os.WriteFile(bad, []byte(strings.Replace(ds, "readinessProbe:", "readynessProbe:", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runErr(filepath.Join(repoRoot(t), "scripts/kubecheck"), nil, "go", "run", ".", bad); err == nil || !strings.Contains(out, "readynessProbe") {
		t.Errorf("kubecheck accepted a misspelt field (err %v):\n%s", err, out)
	}
	var objs []object
	for _, f := range files {
		objs = append(objs, parseObjects(t, f, []byte(readFile(t, f)))...)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.Kind]++
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "NetworkPolicy"} {
		if kinds[k] != 1 {
			t.Errorf("want one %s in %s, have %d", k, dir, kinds[k])
		}
	}
	ns := find(t, objs, "Namespace")
	var nsObj struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
	}
	ns.decode(t, &nsObj)
	if nsObj.Metadata.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("Namespace %s does not admit hostPID pods (pod-security.kubernetes.io/enforce)", ns.Metadata.Name)
	}
	checkAgent(t, objs, wantAgent{
		namespace: ns.Metadata.Name, name: "golens", account: "golens",
		image: "golens:" + buildinfo.Version, optIn: "golens.io/instrument=true",
	})
}

// kubeVersionFile reads the Chart.yaml fields the tests compare.
func chartMeta(t *testing.T) (version, appVersion string) {
	t.Helper()
	var c struct {
		Version    string `yaml:"version"`
		AppVersion string `yaml:"appVersion"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(repoRoot(t), "deploy/helm/golens/Chart.yaml"))), &c); err != nil {
		t.Fatal(err)
	}
	return c.Version, c.AppVersion
}

// writeFile writes data to a new file named name and returns its path.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeValues writes a values file for helm.
func writeValues(t *testing.T, v map[string]any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHelmChart lints the chart with helm and renders it: with its defaults
// it must give the same agent as deploy/kubernetes; with values set, those
// values must reach the objects.
func TestHelmChart(t *testing.T) {
	h := helm(t)
	root := repoRoot(t)
	chart := filepath.Join(root, "deploy/helm/golens")
	env := []string{"HELM_CACHE_HOME=" + t.TempDir(), "HELM_CONFIG_HOME=" + t.TempDir(), "HELM_DATA_HOME=" + t.TempDir()}
	// A helm built from source assumes Kubernetes 1.20 (release builds set
	// the version at link time); the chart needs 1.30.
	kube := "--kube-version=" + kubeVersion

	_, appVersion := chartMeta(t)
	if appVersion != buildinfo.Version {
		t.Errorf("Chart.yaml appVersion %q, golens is %q", appVersion, buildinfo.Version)
	}
	custom := writeValues(t, map[string]any{
		"createNamespace": true,
		"image":           map[string]any{"repository": "registry.example/golens", "tag": "1.2.3"},
		"otlp":            map[string]any{"endpoint": "collector.obs:4317", "insecure": false, "headers": map[string]any{"x-api-key": "k1", "x-tenant": "shop"}, "compression": "gzip"},
		"optInLabel":      "example.com/trace=yes",
		"namespaces":      []string{"shop", "pay"},
		"injectContext":   true,
		"extraArgs":       []string{"--otlp-metrics"},
	})
	out := run(t, root, env, h, "lint", "--strict", kube, chart)
	t.Logf("helm lint: %s", strings.TrimSpace(lastLine(out)))
	run(t, root, env, h, "lint", "--strict", kube, chart, "-f", custom)

	// Defaults: the same agent as deploy/kubernetes.
	rendered := run(t, root, env, h, "template", kube, "golens", chart, "--namespace", "golens")
	kubecheck(t, writeFile(t, "default.yaml", rendered))
	objs := parseObjects(t, "helm template", []byte(rendered))
	ds := checkAgent(t, objs, wantAgent{
		namespace: "golens", name: "golens", account: "golens",
		image: "golens:" + buildinfo.Version, optIn: "golens.io/instrument=true",
	})
	for _, o := range objs {
		if o.Kind == "Namespace" || o.Kind == "Secret" {
			t.Errorf("%s rendered with the default values", o)
		}
	}
	// Same pod security and environment as the plain manifest.
	var plain []object
	for _, f := range []string{"daemonset.yaml"} {
		p := filepath.Join(root, "deploy/kubernetes", f)
		plain = append(plain, parseObjects(t, p, []byte(readFile(t, p)))...)
	}
	var pds daemonSet
	find(t, plain, "DaemonSet").decode(t, &pds)
	if a, b := contract(ds), contract(pds); a != b {
		t.Errorf("chart and deploy/kubernetes differ:\nchart:    %s\nmanifest: %s", a, b)
	}

	// Values set: a release named "obs" in namespace "monitoring".
	rendered = run(t, root, env, h, "template", kube, "obs", chart, "--namespace", "monitoring", "-f", custom)
	kubecheck(t, writeFile(t, "custom.yaml", rendered))
	objs = parseObjects(t, "helm template -f custom", []byte(rendered))
	ds = checkAgent(t, objs, wantAgent{
		namespace: "monitoring", name: "obs-golens", account: "obs-golens",
		image: "registry.example/golens:1.2.3", optIn: "example.com/trace=yes", inject: "true",
	})
	ns := find(t, objs, "Namespace")
	if ns.Metadata.Name != "monitoring" || ns.Metadata.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("Namespace %s %v: want monitoring, labelled privileged", ns.Metadata.Name, ns.Metadata.Labels)
	}
	var secret struct {
		StringData map[string]string `yaml:"stringData"`
	}
	so := find(t, objs, "Secret")
	so.decode(t, &secret)
	if got := secret.StringData["headers"]; got != "x-api-key=k1,x-tenant=shop" {
		t.Errorf("Secret headers %q", got)
	}
	c := ds.Spec.Template.Spec.Containers[0]
	found := false
	for _, e := range c.Env {
		if e.Name == "OTEL_EXPORTER_OTLP_HEADERS" {
			found = e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == so.Metadata.Name && e.ValueFrom.SecretKeyRef.Key == "headers"
		}
	}
	if !found {
		t.Errorf("OTEL_EXPORTER_OTLP_HEADERS does not come from Secret %s", so.Metadata.Name)
	}
	if !slices.Contains(c.Args, "--otlp-metrics") {
		t.Errorf("extraArgs not passed: %q", c.Args)
	}
	var cm configMap
	find(t, objs, "ConfigMap").decode(t, &cm)
	var cfg struct {
		Discover struct {
			K8sNamespaces []string `yaml:"k8s_namespaces"`
		} `yaml:"discover"`
		InjectContext   bool   `yaml:"inject_context"`
		OTLPCompression string `yaml:"otlp_compression"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Discover.K8sNamespaces, []string{"shop", "pay"}) || !cfg.InjectContext || cfg.OTLPCompression != "gzip" {
		t.Errorf("config.yaml: namespaces %q, inject_context %v, otlp_compression %q", cfg.Discover.K8sNamespaces, cfg.InjectContext, cfg.OTLPCompression)
	}
	if cm.Data["otlp-endpoint"] != "collector.obs:4317" || cm.Data["otlp-insecure"] != "false" {
		t.Errorf("OTLP settings in the ConfigMap: %q, %q", cm.Data["otlp-endpoint"], cm.Data["otlp-insecure"])
	}
}

// contract is what must not differ between the chart and the plain
// manifest: how the pod is privileged, probed and configured.
func contract(ds daemonSet) string {
	p := ds.Spec.Template.Spec
	c := p.Containers[0]
	var env []string
	for _, e := range c.Env {
		env = append(env, e.Name)
	}
	slices.Sort(env)
	caps := slices.Clone(c.SecurityContext.Capabilities.Add)
	slices.Sort(caps)
	return fmt.Sprintf("hostPID=%v caps=%v drop=%v priv=%v ro=%v args=%v env=%v live=%s ready=%s res=%v/%v",
		p.HostPID, caps, c.SecurityContext.Capabilities.Drop, *c.SecurityContext.Privileged,
		*c.SecurityContext.ReadOnlyRootFilesystem, c.Args, env,
		c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path, c.Resources.Requests, c.Resources.Limits)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
