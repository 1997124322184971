package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Pod is what golens knows of one pod on its node.
type Pod struct {
	Namespace string
	Name      string
	UID       string
	Node      string
	Labels    map[string]string
	// Owner is the pod's controller as its ownerReferences name it
	// (Kind "ReplicaSet", "StatefulSet", "DaemonSet", "Job", ...).
	OwnerKind, OwnerName string
}

// PodContainer is one container of a pod.
type PodContainer struct {
	Pod       *Pod
	Container string
}

// PodWatchConfig is what a PodWatcher watches and whom it tells.
type PodWatchConfig struct {
	Client *K8sClient
	Node   string // spec.nodeName of the pods watched
	// Changed is called, from the watcher's goroutine, after the pods it
	// knows changed (listed, added, relabelled, deleted, containers started).
	Changed func()
	// MaxBackoff caps the wait between attempts to reach the API server
	// (default 30 s); the first wait is 1 s.
	MaxBackoff time.Duration
	// WatchTimeout is how long one watch request lasts (default 5 min).
	WatchTimeout time.Duration
	Log          *slog.Logger
}

// PodWatcher keeps the pods of one node, and which container ID belongs to
// which of them, up to date by listing and then watching them. When the API
// server cannot be reached it keeps what it knew and retries with capped
// exponential back-off.
type PodWatcher struct {
	cfg PodWatchConfig
	log *slog.Logger

	mu         sync.RWMutex
	pods       map[string]*Pod         // by uid
	containers map[string]PodContainer // by container ID
	byPod      map[string][]string     // uid -> its container IDs
	owners     map[string]k8sOwnerRef  // "kind/ns/name" of a ReplicaSet or Job -> its controller
	rv         string                  // resourceVersion to watch from; "" lists anew
	synced     atomic.Bool             // listed at least once
	up         atomic.Bool             // the last request reached the API server
	lastErr    atomic.Pointer[string]  // why not, when not
}

// NewPodWatcher checks cfg; Run does the work.
func NewPodWatcher(cfg PodWatchConfig) (*PodWatcher, error) {
	if cfg.Client == nil {
		return nil, errors.New("kubernetes: no API client")
	}
	if cfg.Node == "" {
		return nil, errors.New("kubernetes: no node name (set NODE_NAME from the Downward API, or --k8s-node-name)")
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.WatchTimeout <= 0 {
		cfg.WatchTimeout = 5 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Changed == nil {
		cfg.Changed = func() {}
	}
	return &PodWatcher{
		cfg: cfg, log: cfg.Log,
		pods:       make(map[string]*Pod),
		containers: make(map[string]PodContainer),
		byPod:      make(map[string][]string),
		owners:     make(map[string]k8sOwnerRef),
	}, nil
}

// Run lists and watches until ctx is cancelled.
func (w *PodWatcher) Run(ctx context.Context) error {
	const firstBackoff = time.Second
	backoff := firstBackoff
	w.up.Store(true) // so the first failure is said
	for ctx.Err() == nil {
		progressed, err := w.listAndWatch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if progressed && !errors.Is(err, errShortWatch) {
			backoff = firstBackoff
		}
		switch {
		case err == nil:
			continue // a watch ended, or 410 Gone: go on at once
		case errors.Is(err, errShortWatch):
			// Not down, but not watching either (a proxy cutting
			// streams): wait rather than spin.
		default:
			w.down(err, backoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
	return nil
}

// down notes that the API server could not be reached, saying so once per
// change of state.
func (w *PodWatcher) down(err error, retry time.Duration) {
	msg := err.Error()
	w.lastErr.Store(&msg)
	if w.up.Swap(false) {
		w.mu.RLock()
		n := len(w.pods)
		w.mu.RUnlock()
		w.log.Warn("kubernetes API unreachable, keeping the pods known", "err", err, "pods", n, "retry", retry)
	}
}

func (w *PodWatcher) reached() {
	if !w.up.Swap(true) {
		w.log.Info("kubernetes API reachable again")
	}
	w.lastErr.Store(nil)
}

// Healthy tells whether the API server answered the last request, and why
// not when it did not; what was known stays in use either way.
func (w *PodWatcher) Healthy() (bool, string) {
	if p := w.lastErr.Load(); p != nil {
		return false, *p
	}
	return true, ""
}

// Synced tells whether the pods were listed at least once.
func (w *PodWatcher) Synced() bool { return w.synced.Load() }

// errShortWatch is a watch that ended at once with nothing in it.
var errShortWatch = errors.New("watch ended at once")

// listAndWatch lists when it has no resourceVersion, then watches until
// the watch ends (nil), the server says the version is gone (nil, after
// forgetting it), or something fails. progressed is true when the API
// server answered.
func (w *PodWatcher) listAndWatch(ctx context.Context) (progressed bool, err error) {
	w.mu.RLock()
	rv := w.rv
	w.mu.RUnlock()
	if rv == "" {
		l, err := w.cfg.Client.listPods(ctx, w.cfg.Node)
		if err != nil {
			return false, fmt.Errorf("list pods: %w", err)
		}
		w.replace(l)
		progressed = true
		w.reached()
		rv = l.Metadata.ResourceVersion
	}
	body, err := w.cfg.Client.watchPods(ctx, w.cfg.Node, rv, w.cfg.WatchTimeout)
	if err != nil {
		if IsGone(err) {
			w.forgetVersion()
			return true, nil
		}
		return progressed, fmt.Errorf("watch pods: %w", err)
	}
	defer body.Close()
	progressed = true
	w.reached()
	stop := context.AfterFunc(ctx, func() { body.Close() })
	defer stop()
	// A connection that died without a word (a NAT entry dropped) would
	// keep the watch waiting forever: the server ends each watch after
	// WatchTimeout, so one that outlives it by a minute is cut here.
	var stale atomic.Bool
	guard := time.AfterFunc(w.cfg.WatchTimeout+time.Minute, func() { stale.Store(true); body.Close() })
	defer guard.Stop()
	dec := json.NewDecoder(body)
	start := time.Now()
	for n := 0; ; n++ {
		var ev k8sWatchEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil || stale.Load() {
				if n == 0 && time.Since(start) < time.Second {
					return true, errShortWatch
				}
				return true, nil // the server ended the watch: watch again
			}
			return true, fmt.Errorf("watch pods: %w", err)
		}
		switch ev.Type {
		case "ADDED", "MODIFIED", "DELETED", "BOOKMARK":
			var p k8sPod
			if err := json.Unmarshal(ev.Object, &p); err != nil {
				return true, fmt.Errorf("watch pods: %s event: %w", ev.Type, err)
			}
			w.apply(ev.Type, &p)
		case "ERROR":
			var st k8sStatus
			_ = json.Unmarshal(ev.Object, &st)
			if st.Code == 410 || st.Reason == "Expired" || st.Reason == "Gone" {
				w.forgetVersion()
				return true, nil
			}
			return true, fmt.Errorf("watch pods: %w", &K8sStatusError{Code: st.Code, Message: st.Message})
		}
	}
}

func (w *PodWatcher) forgetVersion() {
	w.mu.Lock()
	w.rv = ""
	w.mu.Unlock()
	w.log.Debug("kubernetes watch expired, listing pods again")
}

// replace sets the pods to those listed.
func (w *PodWatcher) replace(l *k8sPodList) {
	w.mu.Lock()
	w.pods = make(map[string]*Pod, len(l.Items))
	w.containers = make(map[string]PodContainer)
	w.byPod = make(map[string][]string)
	for i := range l.Items {
		w.put(&l.Items[i])
	}
	w.rv = l.Metadata.ResourceVersion
	w.mu.Unlock()
	w.synced.Store(true)
	w.log.Debug("kubernetes pods listed", "node", w.cfg.Node, "pods", len(l.Items))
	w.cfg.Changed()
}

// apply handles one watch event.
func (w *PodWatcher) apply(typ string, p *k8sPod) {
	w.mu.Lock()
	if p.Metadata.ResourceVersion != "" {
		w.rv = p.Metadata.ResourceVersion
	}
	switch typ {
	case "BOOKMARK":
		w.mu.Unlock()
		return
	case "DELETED":
		w.remove(p.Metadata.UID)
	default:
		w.remove(p.Metadata.UID)
		w.put(p)
	}
	w.mu.Unlock()
	w.cfg.Changed()
}

// put indexes a pod; w.mu held.
func (w *PodWatcher) put(p *k8sPod) {
	pod := &Pod{
		Namespace: p.Metadata.Namespace,
		Name:      p.Metadata.Name,
		UID:       p.Metadata.UID,
		Node:      p.Spec.NodeName,
		Labels:    p.Metadata.Labels,
	}
	if o, ok := controllerOf(p.Metadata.OwnerReferences); ok {
		pod.OwnerKind, pod.OwnerName = o.Kind, o.Name
	}
	w.pods[pod.UID] = pod
	for _, list := range [][]k8sContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses, p.Status.EphemeralStatuses} {
		for _, cs := range list {
			id := containerIDOfStatus(cs.ContainerID)
			if id == "" {
				continue
			}
			w.containers[id] = PodContainer{Pod: pod, Container: cs.Name}
			w.byPod[pod.UID] = append(w.byPod[pod.UID], id)
		}
	}
}

// remove forgets a pod; w.mu held.
func (w *PodWatcher) remove(uid string) {
	for _, id := range w.byPod[uid] {
		delete(w.containers, id)
	}
	delete(w.byPod, uid)
	delete(w.pods, uid)
}

// containerIDOfStatus takes the ID out of a status' "runtime://id".
func containerIDOfStatus(s string) string {
	if _, id, ok := strings.Cut(s, "://"); ok {
		return id
	}
	return s
}

// Container returns the pod container with this container ID.
func (w *PodWatcher) Container(id string) (PodContainer, bool) {
	if id == "" {
		return PodContainer{}, false
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	c, ok := w.containers[id]
	return c, ok
}

// Pods returns how many pods are known.
func (w *PodWatcher) Pods() int {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return len(w.pods)
}

// Owner is a workload controller of a pod.
type Owner struct{ Kind, Name string }

// Owners returns the pod's controllers, nearest first: its own controller
// (ReplicaSet, StatefulSet, DaemonSet, Job, ...) and, for a ReplicaSet or a
// Job, the one that manages it (a Deployment, a CronJob), read from the API
// server once per ReplicaSet or Job. Without an answer from the API server
// only the pod's own controller is returned. A bare pod has none.
func (w *PodWatcher) Owners(ctx context.Context, p *Pod) []Owner {
	if p.OwnerKind == "" {
		return nil
	}
	owners := []Owner{{p.OwnerKind, p.OwnerName}}
	if p.OwnerKind != "ReplicaSet" && p.OwnerKind != "Job" {
		return owners
	}
	key := p.OwnerKind + "/" + p.Namespace + "/" + p.OwnerName
	w.mu.RLock()
	o, ok := w.owners[key]
	w.mu.RUnlock()
	if !ok {
		var err error
		o, _, err = w.cfg.Client.controllerOwner(ctx, p.OwnerKind, p.Namespace, p.OwnerName)
		if err != nil {
			w.log.Warn("cannot read the owner of a pod's controller", "namespace", p.Namespace, "kind", p.OwnerKind, "name", p.OwnerName, "err", err)
			return owners
		}
		w.mu.Lock()
		w.owners[key] = o // a zero o (no controller) is remembered too
		w.mu.Unlock()
	}
	if o.Kind != "" {
		owners = append(owners, Owner{o.Kind, o.Name})
	}
	return owners
}

// workloadAttrs are the resource attribute keys of workload kinds.
var workloadAttrs = map[string]string{
	"Deployment":  "k8s.deployment.name",
	"ReplicaSet":  "k8s.replicaset.name",
	"StatefulSet": "k8s.statefulset.name",
	"DaemonSet":   "k8s.daemonset.name",
	"Job":         "k8s.job.name",
	"CronJob":     "k8s.cronjob.name",
}

// PodResourceKeys are the resource attributes a pod's processes may get.
var PodResourceKeys = []string{"k8s.namespace.name", "k8s.pod.name", "k8s.pod.uid", "k8s.container.name", "k8s.node.name",
	"k8s.deployment.name", "k8s.replicaset.name", "k8s.statefulset.name", "k8s.daemonset.name", "k8s.job.name", "k8s.cronjob.name"}

// BoundedPodResourceKeys are those of PodResourceKeys that stay the same
// across pod restarts and rollouts: fit for metric labels. (ReplicaSets
// change with each rollout, Jobs with each CronJob run, pods always.)
var BoundedPodResourceKeys = []string{"k8s.namespace.name", "k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name", "k8s.cronjob.name"}

// Resource returns the OpenTelemetry resource attributes of a container
// of p whose controllers are owners (nearest first, as Owners returns
// them), and the service name the pod gives it: its app.kubernetes.io/name
// label, else the outermost controller's name (the Deployment, not its
// ReplicaSet; the CronJob, not its Job), else the pod's.
func (c PodContainer) Resource(owners []Owner) (attrs map[string]string, service string) {
	p := c.Pod
	attrs = map[string]string{
		"k8s.namespace.name": p.Namespace,
		"k8s.pod.name":       p.Name,
		"k8s.pod.uid":        p.UID,
		"k8s.container.name": c.Container,
		"k8s.node.name":      p.Node,
	}
	for _, o := range owners {
		if key, ok := workloadAttrs[o.Kind]; ok && o.Name != "" {
			attrs[key] = o.Name
		}
	}
	switch {
	case p.Labels["app.kubernetes.io/name"] != "":
		service = p.Labels["app.kubernetes.io/name"]
	case len(owners) > 0 && owners[len(owners)-1].Name != "":
		service = owners[len(owners)-1].Name
	default:
		service = p.Name
	}
	return attrs, service
}

// PodSelector says which pods are instrumented: those carrying one label
// (key=value) and, when namespaces are given, in one of them.
type PodSelector struct {
	Key, Value string
	Namespaces []string
}

// DefaultOptInLabel is the label that opts a pod in unless told otherwise.
const DefaultOptInLabel = "golens.io/instrument=true"

// NewPodSelector parses label ("key=value"; "" means DefaultOptInLabel).
func NewPodSelector(label string, namespaces []string) (*PodSelector, error) {
	if label == "" {
		label = DefaultOptInLabel
	}
	k, v, ok := strings.Cut(label, "=")
	if !ok || k == "" || strings.ContainsAny(v, "=,") || strings.ContainsAny(k, ", ") {
		return nil, fmt.Errorf("opt-in label %q: want key=value, e.g. %s", label, DefaultOptInLabel)
	}
	for _, ns := range namespaces {
		if ns == "" || strings.ContainsAny(ns, "/ ") {
			return nil, fmt.Errorf("namespace %q: not a namespace name", ns)
		}
	}
	return &PodSelector{Key: k, Value: v, Namespaces: namespaces}, nil
}

// Match tells whether pod p is instrumented.
func (s *PodSelector) Match(p *Pod) bool {
	if v, ok := p.Labels[s.Key]; !ok || v != s.Value {
		return false
	}
	if len(s.Namespaces) == 0 {
		return true
	}
	for _, ns := range s.Namespaces {
		if ns == p.Namespace {
			return true
		}
	}
	return false
}

// String is the rule as discovery logs it.
func (s *PodSelector) String() string {
	r := "k8s_label=" + s.Key + "=" + s.Value
	if len(s.Namespaces) > 0 {
		r += " k8s_namespaces=" + strings.Join(s.Namespaces, ",")
	}
	return r
}
