package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/golens/golens/test/k8s"
)

// TestServerDryRun gives deploy/kubernetes and the chart's output to a real
// kube-apiserver (built from k8s.io/kubernetes, on Debian's etcd) with
// `kubectl apply --dry-run=server`: every object passes the server's own
// validation, defaulting and admission, with strict field validation. A
// misspelt field is refused, so the check can fail.
func TestServerDryRun(t *testing.T) {
	cl, err := k8s.Start(t.TempDir())
	if err != nil {
		unavailable(t, "no kube-apiserver: %v", err)
	}
	defer cl.Stop()
	kc, err := cl.Kubeconfig(cl.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	root := repoRoot(t)
	kubectl := func(args ...string) (string, error) { return k8s.Kubectl(kc, args...) }
	// Namespaced objects are checked in a namespace that exists: create
	// those the manifests name for real, before the dry run.
	for _, ns := range []string{"golens", "monitoring"} {
		if out, err := kubectl("create", "namespace", ns); err != nil {
			t.Fatalf("create namespace %s: %v\n%s", ns, err, out)
		}
	}
	dryRun := func(what, file string, objects int) {
		t.Helper()
		out, err := kubectl("apply", "--dry-run=server", "--validate=strict", "-f", file)
		if err != nil {
			t.Fatalf("%s: kubectl apply --dry-run=server: %v\n%s", what, err, out)
		}
		// One line per object: "<kind>/<name> created (server dry run)",
		// "configured" or "unchanged" for the namespaces made above.
		n := len(regexp.MustCompile(`(?m)^\S+ (created|configured|unchanged) \(server dry run\)$`).FindAllString(out, -1))
		if n != objects {
			t.Errorf("%s: %d objects accepted, want %d\n%s", what, n, objects, out)
		}
		t.Logf("%s: %d objects accepted by the API server (server dry run)", what, n)
	}

	dir := filepath.Join(root, "deploy/kubernetes")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s", dir)
	}
	objects := 0
	for _, f := range files {
		objects += len(parseObjects(t, f, []byte(readFile(t, f))))
	}
	dryRun("deploy/kubernetes", dir, objects)

	h := helm(t)
	chart := filepath.Join(root, "deploy/helm/golens")
	env := []string{"HELM_CACHE_HOME=" + t.TempDir(), "HELM_CONFIG_HOME=" + t.TempDir(), "HELM_DATA_HOME=" + t.TempDir()}
	kube := "--kube-version=" + kubeVersion
	custom := writeValues(t, map[string]any{
		"createNamespace": true,
		"image":           map[string]any{"repository": "registry.example/golens", "tag": "1.2.3"},
		"otlp":            map[string]any{"endpoint": "collector.obs:4317", "headers": map[string]any{"x-api-key": "k1"}},
		"namespaces":      []string{"shop"},
		"injectContext":   true,
	})
	for _, c := range []struct {
		name, ns, values string
		args             []string
	}{
		{"golens", "golens", "defaults", nil},
		{"obs", "monitoring", "values set", []string{"-f", custom}},
	} {
		rendered := run(t, root, env, h, append([]string{"template", kube, c.name, chart, "--namespace", c.ns}, c.args...)...)
		what := fmt.Sprintf("helm template %s (%s)", c.name, c.values)
		dryRun(what, writeFile(t, c.name+".yaml", rendered), len(parseObjects(t, what, []byte(rendered))))
	}

	// A misspelt field: refused by the server.
	ds := readFile(t, filepath.Join(dir, "daemonset.yaml"))
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(ds, "readinessProbe:", "readynessProbe:", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("apply", "--dry-run=server", "--validate=strict", "-f", bad); err == nil || !strings.Contains(out, "readynessProbe") {
		t.Errorf("the API server accepted a misspelt field (err %v):\n%s", err, out)
	}
}
