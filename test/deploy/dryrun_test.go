package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/golens/golens/test/k8s"
)

// readmeCommand is the one command line in README.md's code blocks that
// starts with prefix (a whole line when prefix ends in neither a space nor a
// slash), as words: what a user copies and runs.
func readmeCommand(t *testing.T, prefix string) []string {
	t.Helper()
	var found []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(readFile(t, filepath.Join(repoRoot(t), "README.md"))))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "```") {
			in = !in
			continue
		}
		if in && (line == prefix || strings.HasPrefix(line, prefix) && strings.HasSuffix(prefix, " ")) {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("README.md: want one command line starting with %q in a code block, have %q", prefix, found)
	}
	if strings.ContainsAny(found[0], `"'$\|<>;&`+"`") {
		t.Fatalf("README.md: %q needs a shell to run; keep it plain words", found[0])
	}
	return strings.Fields(found[0])
}

// cluster starts a fresh kube-apiserver and returns an admin kubeconfig.
func cluster(t *testing.T) string {
	t.Helper()
	cl, err := k8s.Start(t.TempDir())
	if err != nil {
		unavailable(t, "no kube-apiserver: %v", err)
	}
	t.Cleanup(cl.Stop)
	kc, err := cl.Kubeconfig(cl.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// TestServerDryRun runs the README's deploy commands as written, each on a
// fresh kube-apiserver (built from k8s.io/kubernetes, on Debian's etcd):
// `kubectl apply -f deploy/kubernetes/` for real, `helm install` for real,
// and `helm template` without a cluster, its output given to the server
// with `kubectl apply --dry-run=server --validate=strict`, as is the chart
// with values set. Every object passes the server's own validation,
// defaulting and admission; a misspelt field is refused, so the check can
// fail.
func TestServerDryRun(t *testing.T) {
	root := repoRoot(t)
	h := helm(t)
	helmEnv := []string{"HELM_CACHE_HOME=" + t.TempDir(), "HELM_CONFIG_HOME=" + t.TempDir(), "HELM_DATA_HOME=" + t.TempDir()}

	// kubectl apply -f deploy/kubernetes/, once, on a fresh server: every
	// object created (a namespaced one applied before its namespace is
	// refused, and kubectl goes on to the next file).
	kc := cluster(t)
	kubectl := func(args ...string) (string, error) { return k8s.Kubectl(kc, args...) }
	apply := readmeCommand(t, "kubectl apply -f deploy/kubernetes/")
	dir := filepath.Join(root, "deploy/kubernetes")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s", dir)
	}
	var want []string
	for _, f := range files {
		for _, o := range parseObjects(t, f, []byte(readFile(t, f))) {
			want = append(want, strings.ToLower(o.Kind)+"/"+o.Metadata.Name)
		}
	}
	out, err := runErr(root, []string{"KUBECONFIG=" + kc}, apply[0], apply[1:]...)
	if err != nil {
		t.Fatalf("%s on a fresh API server: %v\n%s", strings.Join(apply, " "), err, out)
	}
	created := regexp.MustCompile(`(?m)^(\S+?)(?:\.\S+)?/(\S+) created$`).FindAllStringSubmatch(out, -1)
	var got []string
	for _, m := range created {
		got = append(got, m[1]+"/"+m[2])
	}
	if !sameSet(got, want) {
		t.Errorf("%s created %q, want %q\n%s", strings.Join(apply, " "), got, want, out)
	}
	t.Logf("%s: %d objects created on a fresh API server", strings.Join(apply, " "), len(got))

	dryRunOn := func(kc, what, file string, objects int) {
		t.Helper()
		out, err := k8s.Kubectl(kc, "apply", "--dry-run=server", "--validate=strict", "-f", file)
		if err != nil {
			t.Fatalf("%s: kubectl apply --dry-run=server: %v\n%s", what, err, out)
		}
		// One line per object: "<kind>/<name> created (server dry run)",
		// "configured" or "unchanged" for those that exist.
		n := len(regexp.MustCompile(`(?m)^\S+ (created|configured|unchanged) \(server dry run\)$`).FindAllString(out, -1))
		if n != objects {
			t.Errorf("%s: %d objects accepted, want %d\n%s", what, n, objects, out)
		}
		t.Logf("%s: %d objects accepted by the API server (server dry run)", what, n)
	}

	// The chart with values set, in another namespace.
	if out, err := kubectl("create", "namespace", "monitoring"); err != nil {
		t.Fatalf("create namespace monitoring: %v\n%s", err, out)
	}
	custom := writeValues(t, map[string]any{
		"createNamespace": true,
		"image":           map[string]any{"repository": "registry.example/golens", "tag": "1.2.3"},
		"otlp":            map[string]any{"endpoint": "collector.obs:4317", "headers": map[string]any{"x-api-key": "k1"}},
		"namespaces":      []string{"shop"},
		"injectContext":   true,
	})
	rendered := run(t, root, helmEnv, h, "template", "--kube-version="+kubeVersion, "obs", filepath.Join(root, "deploy/helm/golens"), "--namespace", "monitoring", "-f", custom)
	dryRunOn(kc, "helm template obs (values set)", writeFile(t, "obs.yaml", rendered), len(parseObjects(t, "helm template obs", []byte(rendered))))

	// A misspelt field: refused by the server.
	ds := readFile(t, filepath.Join(dir, "daemonset.yaml"))
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(ds, "readinessProbe:", "readynessProbe:", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("apply", "--dry-run=server", "--validate=strict", "-f", bad); err == nil || !strings.Contains(out, "readynessProbe") {
		t.Errorf("the API server accepted a misspelt field (err %v):\n%s", err, out)
	}

	// helm install as the README shows it, after the namespace, on another
	// fresh server: the release deployed, its objects there.
	kc2 := cluster(t)
	ns := readmeCommand(t, "kubectl apply -f deploy/kubernetes/00-namespace.yaml")
	if out, err := runErr(root, []string{"KUBECONFIG=" + kc2}, ns[0], ns[1:]...); err != nil {
		t.Fatalf("%s on a fresh API server: %v\n%s", strings.Join(ns, " "), err, out)
	}
	install := readmeCommand(t, "helm install ")
	if out, err := runErr(root, append(helmEnv, "KUBECONFIG="+kc2), h, install[1:]...); err != nil {
		t.Fatalf("%s on a fresh API server: %v\n%s", strings.Join(install, " "), err, out)
	}
	status := run(t, root, append(helmEnv, "KUBECONFIG="+kc2), h, "status", "golens", "-n", "golens")
	if !strings.Contains(status, "STATUS: deployed") {
		t.Errorf("helm status after the README's install:\n%s", status)
	}
	for _, o := range []string{"daemonset/golens", "configmap/golens", "networkpolicy/golens", "serviceaccount/golens", "clusterrole/golens", "clusterrolebinding/golens"} {
		if out, err := k8s.Kubectl(kc2, "-n", "golens", "get", o, "-o", "name"); err != nil {
			t.Errorf("after %s: %s: %v\n%s", strings.Join(install, " "), o, err, out)
		}
	}
	t.Logf("%s: deployed on a fresh API server", strings.Join(install, " "))

	// helm template as the README shows it, with no cluster to ask; its
	// output checked by the server that holds the README's release (the
	// chart's selector labels are not deploy/kubernetes', so not the first).
	tmpl := readmeCommand(t, "helm template ")
	rendered, err = runErr(root, append(helmEnv, "KUBECONFIG="+filepath.Join(t.TempDir(), "none")), h, tmpl[1:]...)
	if err != nil {
		t.Fatalf("%s without a cluster: %v\n%s", strings.Join(tmpl, " "), err, rendered)
	}
	dryRunOn(kc2, strings.Join(tmpl, " "), writeFile(t, "readme.yaml", rendered), len(parseObjects(t, "helm template", []byte(rendered))))
}
