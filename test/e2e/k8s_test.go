package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
	"github.com/golens/golens/test/k8s"
)

// Kubernetes pod opt-in against a real kube-apiserver and etcd, the test
// playing the kubelet: pods bound to the node, their container IDs in the
// status, Go targets in cgroups named as the kubelet's systemd driver and
// containerd name them. Only labelled pods are instrumented, with exact
// k8s.* resource attributes (the Deployment through its ReplicaSet, the
// CronJob through its Job) and bounded metric labels;
// labelling a running pod attaches it, unlabelling (or deleting) it
// detaches it. The agent runs as deploy/kubernetes' ServiceAccount, so
// its ClusterRole is proved enough, and kubectl auth can-i proves it
// grants nothing more.
func TestKubernetesOptIn(t *testing.T) {
	root, err := k8s.Cgroup2Root()
	if err != nil {
		unavailable(t, "no cgroup v2 hierarchy for the pods' containers: %v", err)
	}
	cl, err := k8s.Start(t.TempDir())
	if err != nil {
		unavailable(t, "start kube-apiserver: %v", err)
	}
	defer cl.Stop()
	const node = "node-e2e"
	suffix := fmt.Sprint(time.Now().UnixNano() % 1e9)
	ns := "shop-" + suffix

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%v\n%s", err, cl.Logs())
		}
	}
	must(cl.Do("POST", "/api/v1/namespaces", map[string]any{"metadata": map[string]any{"name": ns}}, nil))
	var dep struct {
		Metadata struct{ UID string } `json:"metadata"`
	}
	sel := map[string]any{"matchLabels": map[string]string{"app": "cart"}}
	tmpl := map[string]any{"metadata": map[string]any{"labels": map[string]string{"app": "cart"}},
		"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "cart:1"}}}}
	must(cl.Do("POST", "/apis/apps/v1/namespaces/"+ns+"/deployments", map[string]any{
		"metadata": map[string]any{"name": "cart"},
		"spec":     map[string]any{"replicas": 1, "selector": sel, "template": tmpl},
	}, &dep))
	var rs struct {
		Metadata struct{ UID string } `json:"metadata"`
	}
	must(cl.Do("POST", "/apis/apps/v1/namespaces/"+ns+"/replicasets", map[string]any{
		"metadata": map[string]any{"name": "cart-5d8f7c9b4", "ownerReferences": []any{map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart", "uid": dep.Metadata.UID, "controller": true}}},
		"spec": map[string]any{"replicas": 1, "selector": sel, "template": tmpl},
	}, &rs))

	// A CronJob's run: the Job it created, which owns the pod.
	var cron, job struct {
		Metadata struct{ UID string } `json:"metadata"`
	}
	jobTmpl := map[string]any{"spec": map[string]any{"restartPolicy": "Never",
		"containers": []any{map[string]any{"name": "app", "image": "report:1"}}}}
	must(cl.Do("POST", "/apis/batch/v1/namespaces/"+ns+"/cronjobs", map[string]any{
		"metadata": map[string]any{"name": "report"},
		"spec":     map[string]any{"schedule": "*/5 * * * *", "jobTemplate": map[string]any{"spec": map[string]any{"template": jobTmpl}}},
	}, &cron))
	must(cl.Do("POST", "/apis/batch/v1/namespaces/"+ns+"/jobs", map[string]any{
		"metadata": map[string]any{"name": "report-29321040", "ownerReferences": []any{map[string]any{
			"apiVersion": "batch/v1", "kind": "CronJob", "name": "report", "uid": cron.Metadata.UID, "controller": true}}},
		"spec": map[string]any{"template": jobTmpl},
	}, &job))

	type pod struct {
		name, cid, uid string
		labels         map[string]string
		owner          map[string]any
		app            *harness.App
	}
	rsOwner := map[string]any{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "cart-5d8f7c9b4", "uid": rs.Metadata.UID, "controller": true}
	pods := []*pod{
		{name: "cart-5d8f7c9b4-x2kq9", cid: strings.Repeat("a1", 32), owner: rsOwner, labels: map[string]string{"app": "cart", "golens.io/instrument": "true"}},
		{name: "cart-5d8f7c9b4-p7w4n", cid: strings.Repeat("b2", 32), owner: rsOwner, labels: map[string]string{"app": "cart"}},
		{name: "report-29321040-q8z5m", cid: strings.Repeat("d4", 32), labels: map[string]string{"golens.io/instrument": "true"},
			owner: map[string]any{"apiVersion": "batch/v1", "kind": "Job", "name": "report-29321040", "uid": job.Metadata.UID, "controller": true}},
	}
	for _, p := range pods {
		var created struct {
			Metadata struct{ UID string } `json:"metadata"`
		}
		must(cl.Do("POST", "/api/v1/namespaces/"+ns+"/pods", map[string]any{
			"metadata": map[string]any{"name": p.name, "labels": p.labels, "ownerReferences": []any{p.owner}},
			"spec":     map[string]any{"nodeName": node, "containers": []any{map[string]any{"name": "app", "image": "cart:1"}}},
		}, &created))
		p.uid = created.Metadata.UID
		must(cl.Do("PATCH", "/api/v1/namespaces/"+ns+"/pods/"+p.name+"/status", map[string]any{
			"status": map[string]any{"phase": "Running", "containerStatuses": []any{map[string]any{
				"name": "app", "image": "cart:1", "imageID": "sha256:" + strings.Repeat("c", 64), "ready": true,
				"restartCount": 0, "started": true, "containerID": "containerd://" + p.cid,
				"state": map[string]any{"running": map[string]any{"startedAt": time.Now().UTC().Format(time.RFC3339)}}}}},
		}, nil))
	}

	// The agent's identity: the ServiceAccount and ClusterRole of
	// deploy/kubernetes, applied as they ship; its token from the
	// TokenRequest API, as the kubelet projects it.
	admin, err := cl.Kubeconfig(cl.AdminToken)
	must(err)
	repo, err := harness.RepoRoot()
	must(err)
	args := []string{"apply"}
	for _, f := range []string{"00-namespace", "serviceaccount", "clusterrole", "clusterrolebinding"} {
		args = append(args, "-f", filepath.Join(repo, "deploy", "kubernetes", f+".yaml"))
	}
	if out, err := k8s.Kubectl(admin, args...); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	token, err := cl.ServiceAccountToken("golens", "golens")
	must(err)
	kc, err := cl.Kubeconfig(token)
	must(err)
	// What the grant allows, and nothing more.
	for _, c := range []struct {
		verb, resource string
		allowed        bool
	}{
		{"get", "pods", true}, {"list", "pods", true}, {"watch", "pods", true}, {"get", "replicasets.apps", true}, {"get", "jobs.batch", true},
		{"list", "jobs.batch", false}, {"watch", "jobs.batch", false}, {"get", "cronjobs.batch", false},
		{"list", "replicasets.apps", false}, {"create", "pods", false}, {"delete", "pods", false}, {"patch", "pods", false},
		{"get", "pods --subresource=log", false}, {"create", "pods --subresource=exec", false}, {"get", "secrets", false}, {"get", "configmaps", false},
		{"get", "nodes", false}, {"get", "deployments.apps", false}, {"update", "replicasets.apps", false},
	} {
		out, _ := k8s.Kubectl(kc, append([]string{"auth", "can-i", c.verb}, append(strings.Fields(c.resource), "--all-namespaces")...)...)
		if got := out == "yes"; got != c.allowed {
			t.Errorf("service account golens: can-i %s %s = %q, want allowed=%v", c.verb, c.resource, out, c.allowed)
		}
	}

	bin := buildApp(t, "httpserver", harness.Variant{})
	recv, err := harness.NewReceiver()
	must(err)
	defer recv.Close()
	agent, err := harness.StartAgent(agentBin, nil, "--k8s-opt-in-label", "golens.io/instrument=true",
		"--k8s-namespace", ns, "--kubeconfig", kc, "--k8s-node-name", node,
		"--otlp-endpoint", recv.Addr(), "--otlp-insecure", "--log-level", "debug")
	must(err)
	defer agent.Stop(5 * time.Second)
	must(agent.WaitReady(30 * time.Second))

	for _, p := range pods {
		app, cleanup, err := k8s.StartInCgroup(root, k8s.ContainerCgroup(p.uid, p.cid), bin, nil)
		must(err)
		defer cleanup()
		p.app = app
	}
	attached := func(p *pod) *regexp.Regexp {
		return regexp.MustCompile(fmt.Sprintf(`msg=attached pid=%d .*pod=%s container=app`, p.app.PID(), p.name))
	}
	waitLog := func(what string, re *regexp.Regexp) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !re.MatchString(agent.Log()); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no %q in the agent's log\n%s", what, re, agent.Log())
			}
		}
	}
	waitLog("labelled pod", attached(pods[0]))
	waitLog("labelled cron job pod", attached(pods[2]))
	if n := targets(t, agent); n != 2 {
		t.Fatalf("golens_targets %d, want 2 (only the labelled pods)\n%s", n, agent.Log())
	}

	get(t, pods[1].app.Addr, "/echo/unlabelled")
	get(t, pods[0].app.Addr, "/echo/labelled")
	s := waitPath(t, recv, "/echo/labelled")
	want := map[string]any{
		"service.name":        "cart", // no OTEL_SERVICE_NAME, no app.kubernetes.io/name: the owner
		"k8s.namespace.name":  ns,
		"k8s.pod.name":        pods[0].name,
		"k8s.pod.uid":         pods[0].uid,
		"k8s.container.name":  "app",
		"k8s.node.name":       node,
		"k8s.deployment.name": "cart",
		"process.pid":         int64(pods[0].app.PID()),
	}
	for k, v := range want {
		if s.Resource[k] != v {
			t.Errorf("resource %s = %v, want %v", k, s.Resource[k], v)
		}
	}
	for _, sp := range recv.Spans() {
		if sp.Attrs["url.path"] == "/echo/unlabelled" {
			t.Errorf("span from the unlabelled pod: %+v", sp)
		}
	}
	// The CronJob's pod: named by the CronJob, through its Job.
	get(t, pods[2].app.Addr, "/echo/report")
	s = waitPath(t, recv, "/echo/report")
	for k, v := range map[string]any{"service.name": "report", "k8s.cronjob.name": "report", "k8s.job.name": "report-29321040",
		"k8s.pod.name": pods[2].name, "k8s.namespace.name": ns} {
		if s.Resource[k] != v {
			t.Errorf("cron job pod: resource %s = %v, want %v", k, s.Resource[k], v)
		}
	}
	// The metrics carry the namespace and the workload (bounded), not
	// the pod, ReplicaSet or Job names.
	text, err := agent.Metrics()
	must(err)
	for _, c := range []struct{ service, labels string }{
		{"cart", `k8s_cronjob_name="",k8s_daemonset_name="",k8s_deployment_name="cart",k8s_namespace_name="` + ns + `",k8s_statefulset_name=""`},
		{"report", `k8s_cronjob_name="report",k8s_daemonset_name="",k8s_deployment_name="",k8s_namespace_name="` + ns + `",k8s_statefulset_name=""`},
	} {
		re := regexp.MustCompile(`(?m)^go_app_http_server_requests_total\{` + regexp.QuoteMeta(c.labels) + `,method="GET",route="[^"]*",service_name="` + c.service + `",status_code="200"\} 1$`)
		if !re.MatchString(text) {
			t.Errorf("no series of %s with %s in\n%s", c.service, c.labels, grepLines(text, "go_app_http_server_requests_total"))
		}
	}
	for _, unbounded := range []string{"k8s_pod_name", "k8s_replicaset_name", "k8s_job_name"} {
		if strings.Contains(text, unbounded) {
			t.Errorf("metrics labelled with %s", unbounded)
		}
	}

	// Label the running second pod: attached. Unlabel the first: detached.
	must(cl.Do("PATCH", "/api/v1/namespaces/"+ns+"/pods/"+pods[1].name, map[string]any{
		"metadata": map[string]any{"labels": map[string]any{"golens.io/instrument": "true"}}}, nil))
	waitLog("label added", attached(pods[1]))
	get(t, pods[1].app.Addr, "/echo/now-labelled")
	if s := waitPath(t, recv, "/echo/now-labelled"); s.Resource["k8s.pod.name"] != pods[1].name {
		t.Errorf("span of the relabelled pod: %+v", s.Resource)
	}
	must(cl.Do("PATCH", "/api/v1/namespaces/"+ns+"/pods/"+pods[0].name, map[string]any{
		"metadata": map[string]any{"labels": map[string]any{"golens.io/instrument": nil}}}, nil))
	waitLog("label removed", regexp.MustCompile(fmt.Sprintf(`msg=detached pid=%d reason="pod not selected"`, pods[0].app.PID())))
	// Pod deleted: detached too.
	must(cl.Do("DELETE", "/api/v1/namespaces/"+ns+"/pods/"+pods[1].name+"?gracePeriodSeconds=0", nil, nil))
	waitLog("pod deleted", regexp.MustCompile(fmt.Sprintf(`msg=detached pid=%d reason="pod deleted"`, pods[1].app.PID())))
	if n := targets(t, agent); n != 1 {
		t.Errorf("golens_targets %d after unlabel and delete, want 1 (the cron job's pod)", n)
	}

	// The API server goes away: the agent runs on and says so.
	text, err = agent.Metrics()
	must(err)
	if v := scrapeValue(t, text, "golens_kubernetes_pods"); v != 2 {
		t.Errorf("golens_kubernetes_pods %v, want 2 (one of three deleted)", v)
	}
	if v := scrapeValue(t, text, "golens_kubernetes_api_reachable"); v != 1 {
		t.Errorf("golens_kubernetes_api_reachable %v while the API server runs, want 1", v)
	}
	cl.Stop()
	deadline := time.Now().Add(15 * time.Second)
	for {
		text, err := agent.Metrics()
		must(err)
		resp, err := http.Get("http://" + agent.MetricsAddr + "/healthz")
		must(err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if scrapeValue(t, text, "golens_kubernetes_api_reachable") == 0 && resp.StatusCode == 200 &&
			strings.Contains(string(body), "kubernetes API unreachable") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("API server stopped 15 s ago: /healthz %d %q, metrics still say reachable\n%s", resp.StatusCode, body, agent.Log())
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, l := range strings.Split(agent.Log(), "\n") {
		if strings.Contains(l, "attached") || strings.Contains(l, "msg=detached") || strings.Contains(l, "discovery running") {
			t.Log(l)
		}
	}
}
