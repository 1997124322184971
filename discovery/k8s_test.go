package discovery

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	cidA = "3f2c0e54d3a1a4a1ad7b38bd2f0c3e5b2f0f1c4b8d9e7a6b5c4d3e2f1a0b9c8d"
	cidB = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"
)

// Real path shapes, as the kubelet and the runtimes name the cgroups.
func TestContainerIDOfPath(t *testing.T) {
	for _, c := range []struct{ path, want string }{
		// containerd, systemd driver (cgroup v2 and hybrid unified)
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f6c2b1e_5d4a_4e8b_9c3d_2a1b0c9d8e7f.slice/cri-containerd-" + cidA + ".scope", cidA},
		{"/kubepods.slice/kubepods-pod0f6c2b1e_5d4a_4e8b_9c3d_2a1b0c9d8e7f.slice/cri-containerd-" + cidA + ".scope", cidA},
		// CRI-O, systemd driver; its conmon is not the container
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b.slice/crio-" + cidA + ".scope", cidA},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b.slice/crio-conmon-" + cidA + ".scope", ""},
		// Docker (cri-dockerd), systemd driver, and plain Docker
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b.slice/docker-" + cidA + ".scope", cidA},
		{"/system.slice/docker-" + cidA + ".scope", cidA},
		// cgroupfs driver (v1 controllers, or v2)
		{"/kubepods/besteffort/pod0f6c2b1e-5d4a-4e8b-9c3d-2a1b0c9d8e7f/" + cidA, cidA},
		{"/kubepods/pod0f6c2b1e-5d4a-4e8b-9c3d-2a1b0c9d8e7f/" + cidA, cidA},
		{"/docker/" + cidA, cidA},
		// seen from inside a cgroup namespace; a cgroup the container made
		{"/../../kubepods-besteffort-pod1a2b.slice/cri-containerd-" + cidA + ".scope", cidA},
		{"/kubepods/besteffort/pod1a2b/" + cidA + "/worker", cidA},
		// no container
		{"/system.slice/nginx.service", ""},
		{"/user.slice/user-1000.slice/session-3.scope", ""},
		{"/kubepods.slice/kubepods-besteffort.slice", ""},
		{"/", ""},
		{"/docker/" + strings.ToUpper(cidA), ""},
	} {
		if got := ContainerIDOfPath(c.path); got != c.want {
			t.Errorf("ContainerIDOfPath(%q) = %q, want %q", c.path, got, c.want)
		}
	}
}

func TestContainerIDOf(t *testing.T) {
	hybrid := "12:memory:/kubepods/besteffort/pod1a2b/" + cidB + "\n" +
		"1:name=systemd:/kubepods/besteffort/pod1a2b/" + cidB + "\n" +
		"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b.slice/cri-containerd-" + cidA + ".scope\n"
	if got := ContainerIDOf(hybrid); got != cidA {
		t.Errorf("hybrid: %q, want the unified line's %q", got, cidA)
	}
	v1 := "11:cpuset:/\n4:memory:/kubepods/burstable/pod1a2b/" + cidB + "\n1:name=systemd:/kubepods/burstable/pod1a2b/" + cidB + "\n0::/\n"
	if got := ContainerIDOf(v1); got != cidB {
		t.Errorf("v1: %q, want %q", got, cidB)
	}
	if got := ContainerIDOf("0::/system.slice/sshd.service\n"); got != "" {
		t.Errorf("host process: %q", got)
	}
}

func TestPodSelector(t *testing.T) {
	s, err := NewPodSelector("", nil)
	if err != nil || s.Key != "golens.io/instrument" || s.Value != "true" {
		t.Fatalf("default: %+v, %v", s, err)
	}
	p := &Pod{Namespace: "shop", Labels: map[string]string{"golens.io/instrument": "true"}}
	if !s.Match(p) {
		t.Error("labelled pod not selected")
	}
	if s.Match(&Pod{Namespace: "shop", Labels: map[string]string{"golens.io/instrument": "false"}}) || s.Match(&Pod{Namespace: "shop"}) {
		t.Error("unlabelled pod selected")
	}
	s, _ = NewPodSelector("golens.io/instrument=true", []string{"pay", "web"})
	if s.Match(p) {
		t.Error("pod outside the namespaces selected")
	}
	p.Namespace = "web"
	if !s.Match(p) {
		t.Error("pod in a listed namespace not selected")
	}
	for _, bad := range []string{"novalue", "=x", "a=b=c", "a,b=c"} {
		if _, err := NewPodSelector(bad, nil); err == nil {
			t.Errorf("label %q accepted", bad)
		}
	}
}

func TestPodResource(t *testing.T) {
	pod := &Pod{Namespace: "shop", Name: "cart-7d9f-x2", UID: "u1", Node: "n1", Labels: map[string]string{}}
	pc := PodContainer{Pod: pod, Container: "app"}
	attrs, svc := pc.Resource([]Owner{{"ReplicaSet", "cart-7d9f"}, {"Deployment", "cart"}})
	want := map[string]string{"k8s.namespace.name": "shop", "k8s.pod.name": "cart-7d9f-x2", "k8s.pod.uid": "u1",
		"k8s.container.name": "app", "k8s.node.name": "n1", "k8s.replicaset.name": "cart-7d9f", "k8s.deployment.name": "cart"}
	if fmt.Sprint(attrs) != fmt.Sprint(want) || svc != "cart" {
		t.Errorf("attrs %v service %q", attrs, svc)
	}
	attrs, svc = pc.Resource([]Owner{{"Job", "report-29321040"}, {"CronJob", "report"}})
	if attrs["k8s.job.name"] != "report-29321040" || attrs["k8s.cronjob.name"] != "report" || svc != "report" {
		t.Errorf("cron job: attrs %v service %q", attrs, svc)
	}
	if _, svc := pc.Resource([]Owner{{"Job", "once"}}); svc != "once" {
		t.Errorf("bare job: service %q", svc)
	}
	pod.Labels["app.kubernetes.io/name"] = "shop-cart"
	if _, svc := pc.Resource([]Owner{{"StatefulSet", "db"}}); svc != "shop-cart" {
		t.Errorf("service %q, want the app.kubernetes.io/name label", svc)
	}
	if attrs, _ := pc.Resource([]Owner{{"DaemonSet", "agent"}}); attrs["k8s.daemonset.name"] != "agent" {
		t.Errorf("daemonset: %v", attrs)
	}
	pod.Labels = nil
	if attrs, svc := pc.Resource(nil); svc != "cart-7d9f-x2" || len(attrs) != 5 {
		t.Errorf("bare pod: service %q, attrs %v", svc, attrs)
	}
}

// fakeAPI is an API server serving pods of one node from a list and a
// watch stream the test feeds, and ReplicaSets.
type fakeAPI struct {
	t       *testing.T
	mu      sync.Mutex
	rv      int
	pods    map[string]string // uid -> pod JSON
	events  chan string       // watch events, one JSON object each
	down    bool              // answer 503
	lists   int
	rsGets  int
	jobGets int
	gone    bool // the next watch answers 410
	token   string
}

func newFakeAPI(t *testing.T) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{t: t, pods: map[string]string{}, events: make(chan string, 16), token: "s3cret", rv: 100}
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		http.Error(w, `{"kind":"Status","code":401,"message":"Unauthorized"}`, 401)
		return
	}
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		http.Error(w, `{"kind":"Status","code":503,"message":"etcd unavailable"}`, 503)
		return
	}
	switch {
	case r.URL.Path == "/api/v1/pods" && r.URL.Query().Get("watch") == "true":
		if got := r.URL.Query().Get("fieldSelector"); got != "spec.nodeName=node-a" {
			f.t.Errorf("watch fieldSelector %q", got)
		}
		f.mu.Lock()
		gone := f.gone
		f.gone = false
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if gone {
			fmt.Fprint(w, `{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (2)","reason":"Expired","code":410}}`+"\n")
			return
		}
		w.(http.Flusher).Flush()
		f.mu.Lock()
		events := f.events
		f.mu.Unlock()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					return
				}
				fmt.Fprintln(w, ev)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	case r.URL.Path == "/api/v1/pods":
		if got := r.URL.Query().Get("fieldSelector"); got != "spec.nodeName=node-a" {
			f.t.Errorf("list fieldSelector %q", got)
		}
		f.mu.Lock()
		f.lists++
		var items []string
		for _, p := range f.pods {
			items = append(items, p)
		}
		fmt.Fprintf(w, `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"%d"},"items":[%s]}`, f.rv, strings.Join(items, ","))
		f.mu.Unlock()
	case r.URL.Path == "/apis/apps/v1/namespaces/shop/replicasets/cart-7d9f8b6c5":
		f.mu.Lock()
		f.rsGets++
		f.mu.Unlock()
		fmt.Fprint(w, `{"kind":"ReplicaSet","apiVersion":"apps/v1","metadata":{"name":"cart-7d9f8b6c5","namespace":"shop","uid":"rs1",
			"ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"cart","uid":"d1","controller":true,"blockOwnerDeletion":true}]},"spec":{"replicas":1}}`)
	case r.URL.Path == "/apis/batch/v1/namespaces/shop/jobs/report-29321040":
		f.mu.Lock()
		f.jobGets++
		f.mu.Unlock()
		fmt.Fprint(w, `{"kind":"Job","apiVersion":"batch/v1","metadata":{"name":"report-29321040","namespace":"shop","uid":"j1",
			"ownerReferences":[{"apiVersion":"batch/v1","kind":"CronJob","name":"report","uid":"cj1","controller":true,"blockOwnerDeletion":true}]},"spec":{"completions":1}}`)
	case r.URL.Path == "/apis/batch/v1/namespaces/shop/jobs/once":
		f.mu.Lock()
		f.jobGets++
		f.mu.Unlock()
		fmt.Fprint(w, `{"kind":"Job","apiVersion":"batch/v1","metadata":{"name":"once","namespace":"shop","uid":"j2"},"spec":{"completions":1}}`)
	default:
		http.Error(w, `{"kind":"Status","code":404,"message":"not found"}`, 404)
	}
}

// podJSON is a pod as the API server serves it, trimmed to what matters
// but with the real field names and shapes.
func podJSON(uid, name string, rv int, labels map[string]string, containerID string) string {
	l, _ := json.Marshal(labels)
	status := `"phase":"Pending"`
	if containerID != "" {
		status = `"phase":"Running","containerStatuses":[{"name":"app","state":{"running":{"startedAt":"2026-11-25T10:00:00Z"}},"ready":true,"restartCount":0,"image":"cart:1","imageID":"sha256:ab","containerID":"containerd://` + containerID + `","started":true}]`
	}
	return fmt.Sprintf(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":%q,"namespace":"shop","uid":%q,"resourceVersion":"%d","labels":%s,
		"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"cart-7d9f8b6c5","uid":"rs1","controller":true,"blockOwnerDeletion":true}]},
		"spec":{"nodeName":"node-a","containers":[{"name":"app","image":"cart:1"}]},"status":{%s}}`, name, uid, rv, l, status)
}

func writeKubeconfig(t *testing.T, srv *httptest.Server, token string) string {
	t.Helper()
	ca := srv.Certificate()
	pemCA := fmt.Sprintf("-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n", base64.StdEncoding.EncodeToString(ca.Raw))
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
contexts:
- name: other
  context: {cluster: nope, user: nope}
- name: test
  context:
    cluster: test
    user: admin
current-context: test
users:
- name: admin
  user:
    token: %s
`, srv.URL, base64.StdEncoding.EncodeToString([]byte(pemCA)), token)
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// List, then watch: pods added, relabelled, started and deleted are seen;
// a 410 Gone lists anew; an unreachable API server keeps what was known
// and is retried; the Deployment is found through the ReplicaSet, once.
func TestPodWatcher(t *testing.T) {
	api, srv := newFakeAPI(t)
	api.pods["u1"] = podJSON("u1", "cart-7d9f8b6c5-x2", 100, map[string]string{"golens.io/instrument": "true"}, cidA)
	client, err := NewK8sClient(writeKubeconfig(t, srv, api.token))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	changed := 0
	w, err := NewPodWatcher(PodWatchConfig{Client: client, Node: "node-a", MaxBackoff: 50 * time.Millisecond,
		Changed: func() { mu.Lock(); changed++; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "list", w.Synced)
	pc, ok := w.Container(cidA)
	if !ok || pc.Pod.Name != "cart-7d9f8b6c5-x2" || pc.Container != "app" || pc.Pod.Node != "node-a" || pc.Pod.OwnerKind != "ReplicaSet" {
		t.Fatalf("container %s: %+v %v", cidA, pc, ok)
	}
	sel, _ := NewPodSelector("", nil)
	if !sel.Match(pc.Pod) {
		t.Error("listed pod not selected")
	}
	for range 2 {
		if o := w.Owners(ctx, pc.Pod); fmt.Sprint(o) != "[{ReplicaSet cart-7d9f8b6c5} {Deployment cart}]" {
			t.Errorf("owners %v", o)
		}
	}
	// A Job's CronJob; a Job without one; a StatefulSet's pod (no lookup);
	// a controller the API server does not know (only the pod's own).
	cron := &Pod{Namespace: "shop", Name: "report-29321040-abcde", OwnerKind: "Job", OwnerName: "report-29321040"}
	once := &Pod{Namespace: "shop", Name: "once-fghij", OwnerKind: "Job", OwnerName: "once"}
	for range 2 {
		if o := w.Owners(ctx, cron); fmt.Sprint(o) != "[{Job report-29321040} {CronJob report}]" {
			t.Errorf("cron job pod: owners %v", o)
		}
		if o := w.Owners(ctx, once); fmt.Sprint(o) != "[{Job once}]" {
			t.Errorf("bare job pod: owners %v", o)
		}
	}
	if o := w.Owners(ctx, &Pod{Namespace: "shop", OwnerKind: "StatefulSet", OwnerName: "db"}); fmt.Sprint(o) != "[{StatefulSet db}]" {
		t.Errorf("statefulset pod: owners %v", o)
	}
	if o := w.Owners(ctx, &Pod{Namespace: "shop", OwnerKind: "ReplicaSet", OwnerName: "ghost"}); fmt.Sprint(o) != "[{ReplicaSet ghost}]" {
		t.Errorf("unknown replicaset: owners %v", o)
	}
	if api.mu.Lock(); api.rsGets != 1 || api.jobGets != 2 {
		t.Errorf("%d ReplicaSet and %d Job GETs, want 1 and 2 (cached)", api.rsGets, api.jobGets)
	}
	api.mu.Unlock()

	// A pod started: pending first, then its container.
	api.events <- `{"type":"ADDED","object":` + podJSON("u2", "web-1", 101, nil, "") + `}`
	api.events <- `{"type":"MODIFIED","object":` + podJSON("u2", "web-1", 102, nil, cidB) + `}`
	waitFor(t, "second pod's container", func() bool { _, ok := w.Container(cidB); return ok })
	if pc, _ := w.Container(cidB); sel.Match(pc.Pod) {
		t.Error("unlabelled pod selected")
	}
	// Label added to the running pod.
	api.events <- `{"type":"MODIFIED","object":` + podJSON("u2", "web-1", 103, map[string]string{"golens.io/instrument": "true"}, cidB) + `}`
	waitFor(t, "label", func() bool { pc, _ := w.Container(cidB); return sel.Match(pc.Pod) })
	// Bookmarks move the version only.
	api.events <- `{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"110"}}}`
	// Deleted.
	api.events <- `{"type":"DELETED","object":` + podJSON("u2", "web-1", 111, nil, cidB) + `}`
	waitFor(t, "delete", func() bool { _, ok := w.Container(cidB); return !ok })
	w.mu.RLock()
	rv := w.rv
	w.mu.RUnlock()
	if rv != "111" {
		t.Errorf("resourceVersion %q, want 111", rv)
	}

	// The watch expires (410): list again, with what the list says now.
	api.mu.Lock()
	api.gone = true
	lists := api.lists
	delete(api.pods, "u1")
	api.pods["u3"] = podJSON("u3", "cart-7d9f8b6c5-y7", 120, map[string]string{"golens.io/instrument": "true"}, cidB)
	api.rv = 120
	api.mu.Unlock()
	api.mu.Lock()
	close(api.events) // end the current watch
	api.mu.Unlock()
	waitFor(t, "re-list", func() bool { api.mu.Lock(); defer api.mu.Unlock(); return api.lists > lists })
	waitFor(t, "re-listed pods", func() bool { _, a := w.Container(cidA); _, b := w.Container(cidB); return !a && b })

	// The API server goes away: what was known stays, and comes back.
	api.mu.Lock()
	api.events = make(chan string, 16)
	api.down = true
	api.gone = true // the watch after the list fails: re-list, then 503
	api.mu.Unlock()
	waitFor(t, "unhealthy", func() bool { ok, _ := w.Healthy(); return !ok })
	if _, ok := w.Container(cidB); !ok {
		t.Error("pods forgotten while the API server is unreachable")
	}
	api.mu.Lock()
	api.down = false
	api.mu.Unlock()
	waitFor(t, "healthy again", func() bool { ok, _ := w.Healthy(); return ok })
	if _, ok := w.Container(cidB); !ok {
		t.Error("pod lost after reconnecting")
	}
}

func TestKubeconfigErrors(t *testing.T) {
	_, srv := newFakeAPI(t)
	p := writeKubeconfig(t, srv, "x")
	raw, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(raw), "current-context: test", "current-context: missing", 1)), 0o600)
	if _, err := NewK8sClient(p); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing context: %v", err)
	}
	if _, err := NewK8sClient(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("missing file accepted")
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := NewK8sClient(""); err == nil || !strings.Contains(err.Error(), "not in a cluster") {
		t.Errorf("in-cluster outside a cluster: %v", err)
	}
	// A wrong token is an API error, with the server's message.
	api, srv2 := newFakeAPI(t)
	c, err := NewK8sClient(writeKubeconfig(t, srv2, "wrong"))
	if err != nil {
		t.Fatal(err)
	}
	_ = api
	_, err = c.listPods(context.Background(), "node-a")
	if se, ok := err.(*K8sStatusError); !ok || se.Code != 401 || se.Message != "Unauthorized" {
		t.Errorf("wrong token: %v", err)
	}
}

// In a pod: the service account's CA and token, the token read again for
// every request (the kubelet rotates bound tokens).
func TestK8sInCluster(t *testing.T) {
	api, srv := newFakeAPI(t)
	dir := t.TempDir()
	old := serviceAccountDir
	serviceAccountDir = dir
	defer func() { serviceAccountDir = old }()
	pemCA := fmt.Sprintf("-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n", base64.StdEncoding.EncodeToString(srv.Certificate().Raw))
	os.WriteFile(filepath.Join(dir, "ca.crt"), []byte(pemCA), 0o644)
	os.WriteFile(filepath.Join(dir, "token"), []byte("old\n"), 0o600)
	host, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "https://"), ":")
	t.Setenv("KUBERNETES_SERVICE_HOST", host)
	t.Setenv("KUBERNETES_SERVICE_PORT", port)
	c, err := NewK8sClient("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.listPods(context.Background(), "node-a"); err == nil {
		t.Error("old token accepted")
	}
	os.WriteFile(filepath.Join(dir, "token"), []byte(api.token+"\n"), 0o600)
	if _, err := c.listPods(context.Background(), "node-a"); err != nil {
		t.Errorf("rotated token: %v", err)
	}
}
