package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golens/golens/discovery"
	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/event"
)

// DiscoverConfig selects processes to instrument as they start (config file
// key "discover"). The file's rules apply with --discover or enabled: true;
// --exe, --systemd-unit and the --k8s-* flags on the command line apply by
// themselves.
type DiscoverConfig struct {
	Enabled     bool     `yaml:"enabled"`
	Exe         []string `yaml:"exe"`          // executable path globs
	SystemdUnit []string `yaml:"systemd_unit"` // systemd unit globs
	// Kubernetes pod opt-in, the keys deploy/kubernetes and the chart set:
	// the Go processes of this node's pods carrying the label (key=value)
	// and, when namespaces are listed, in one of them.
	K8sOptInLabel string   `yaml:"k8s_opt_in_label"`
	K8sNamespaces []string `yaml:"k8s_namespaces"`
	// Kubeconfig is the API server's kubeconfig file; "" means in-cluster
	// (the pod's service account).
	Kubeconfig string `yaml:"kubeconfig"`
	// K8sNodeName is this node's name (default: $NODE_NAME).
	K8sNodeName string `yaml:"k8s_node_name"`

	k8s     bool // pod opt-in is on
	ignored int  // rules in the file left off because discovery is not enabled
}

// k8sFlags are the command line's Kubernetes settings ("" / nil: not given).
type k8sFlags struct {
	label, kubeconfig, node string
	namespaces              []string
	labelSet                bool
}

// active tells whether any rule selects processes.
func (d DiscoverConfig) active() bool { return len(d.Exe)+len(d.SystemdUnit) > 0 || d.k8s }

// noTarget says why nothing at all is selected.
func (d DiscoverConfig) noTarget() error {
	if d.ignored > 0 {
		return errors.New("no target: the config file's discover rules apply only with --discover (or discover.enabled: true)")
	}
	return errors.New("no target: give --pid PID, --exe GLOB, --systemd-unit GLOB or --k8s-opt-in-label KEY=VALUE (see --help)")
}

// resolveDiscover merges the file's rules (when enabled) with the command
// line's and checks them.
func resolveDiscover(file DiscoverConfig, exe, units []string, kf k8sFlags) (DiscoverConfig, error) {
	d := DiscoverConfig{Enabled: file.Enabled, Kubeconfig: file.Kubeconfig, K8sNodeName: file.K8sNodeName}
	fileK8s := file.K8sOptInLabel != "" || len(file.K8sNamespaces) > 0
	if file.Enabled {
		d.Exe = append(d.Exe, file.Exe...)
		d.SystemdUnit = append(d.SystemdUnit, file.SystemdUnit...)
		d.K8sOptInLabel, d.K8sNamespaces, d.k8s = file.K8sOptInLabel, file.K8sNamespaces, fileK8s
	} else {
		d.ignored = len(file.Exe) + len(file.SystemdUnit)
		if fileK8s {
			d.ignored++
		}
	}
	d.Exe = append(d.Exe, exe...)
	d.SystemdUnit = append(d.SystemdUnit, units...)
	if kf.labelSet {
		d.K8sOptInLabel, d.k8s = kf.label, true
	}
	if len(kf.namespaces) > 0 {
		d.K8sNamespaces, d.k8s = kf.namespaces, true
	}
	if kf.kubeconfig != "" {
		d.Kubeconfig = kf.kubeconfig
	}
	if kf.node != "" {
		d.K8sNodeName = kf.node
	}
	if d.K8sNodeName == "" {
		d.K8sNodeName = os.Getenv("NODE_NAME")
	}
	if d.Enabled && !d.active() {
		return d, errors.New("--discover: no rule (give --exe GLOB, --systemd-unit GLOB, --k8s-opt-in-label KEY=VALUE, or discover: {exe: [...], systemd_unit: [...], k8s_opt_in_label: ...} in --config)")
	}
	if _, err := discovery.NewSelector(d.Exe, d.SystemdUnit); err != nil {
		return d, err
	}
	if d.k8s {
		if d.K8sOptInLabel == "" {
			d.K8sOptInLabel = discovery.DefaultOptInLabel
		}
		if _, err := discovery.NewPodSelector(d.K8sOptInLabel, d.K8sNamespaces); err != nil {
			return d, fmt.Errorf("discover: %w", err)
		}
		if d.K8sNodeName == "" {
			return d, errors.New("discover: Kubernetes pod opt-in needs this node's name: set NODE_NAME (Downward API spec.nodeName) or --k8s-node-name")
		}
	}
	return d, nil
}

// discoverer attaches the processes discovery selects, and releases them
// when they exit. Both run beside the watcher, so that neither a burst of
// replicas starting nor the kernel retiring an exited target's uprobes (an
// RCU grace period per link, ~300 ms here) delays the next attach; what is
// done to one pid still happens in the order the events came.
type discoverer struct {
	watcher *discovery.Watcher
	mgr     *probes.Manager
	service string // --service-name
	log     *slog.Logger
	// released is told of every target released here rather than by the
	// manager's own exit watcher (tracer state).
	released func(pid int)

	// Kubernetes pod opt-in (nil pods: off). Every Go process is offered
	// by the watcher (catch-all rule k8sRule); those in a container are
	// candidates, attached while their pod is selected.
	pods     *discovery.PodWatcher
	podSel   *discovery.PodSelector
	userSel  *discovery.Selector // the exe and unit rules, which select by themselves
	synced   chan struct{}       // closed once the pods were listed
	syncOnce sync.Once
	kmu      sync.Mutex
	cands    map[int]*candidate // by pid

	ctx   context.Context // Run's: nothing is attached once it is done
	slots chan struct{}   // attaches at once: one per CPU, they are CPU-bound
	mu    sync.Mutex
	last  map[int]chan struct{} // pid -> closed when its latest operation is done
	wg    sync.WaitGroup
}

// k8sRule is the watcher rule that offers every Go process when pods are
// selected: which of them are is known only from their cgroup and pod.
const k8sRule = "**"

// candidate is a Go process in a container, attached while its pod is
// selected.
type candidate struct {
	f   discovery.Found
	cid string // container ID
	on  bool   // attach scheduled (its pod is selected)
}

// newDiscovery prepares discovery for mgr's targets; ready is called once
// the targets the initial scan selected were attached (or refused).
func newDiscovery(cfg Config, mgr *probes.Manager, released func(pid int), ready func(), log *slog.Logger) (*discoverer, error) {
	sel, err := discovery.NewSelector(cfg.Discover.Exe, cfg.Discover.SystemdUnit)
	if err != nil {
		return nil, err
	}
	d := &discoverer{
		mgr: mgr, service: cfg.ServiceName, log: log, released: released,
		last:  make(map[int]chan struct{}),
		slots: make(chan struct{}, runtime.NumCPU()),
	}
	if cfg.Discover.k8s {
		if err := d.setupK8s(cfg.Discover); err != nil {
			return nil, err
		}
		d.userSel = sel
		if sel, err = discovery.NewSelector(append(slices.Clone(cfg.Discover.Exe), k8sRule), cfg.Discover.SystemdUnit); err != nil {
			return nil, err
		}
	}
	if n := cfg.Discover.ignored; n > 0 {
		d.log.Warn("discover rules in the config file are off: pass --discover or set discover.enabled", "rules", n)
	}
	d.watcher, err = discovery.NewWatcher(discovery.WatchConfig{
		Selector: sel,
		Found:    d.found,
		Gone:     d.gone,
		Ready: func(n int) {
			d.wg.Wait() // the initial scan's attaches
			args := []any{"exe", cfg.Discover.Exe, "systemd_unit", cfg.Discover.SystemdUnit, "selected", n, "targets", len(d.mgr.Targets())}
			if d.pods != nil {
				args = append(args, "k8s", d.podSel.String(), "node", cfg.Discover.K8sNodeName, "pods", d.pods.Pods())
			}
			d.log.Info("discovery running", args...)
			ready()
		},
		Log: d.log,
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// setupK8s prepares pod opt-in: the API client and the pod watcher.
func (d *discoverer) setupK8s(c DiscoverConfig) error {
	var err error
	if d.podSel, err = discovery.NewPodSelector(c.K8sOptInLabel, c.K8sNamespaces); err != nil {
		return err
	}
	client, err := discovery.NewK8sClient(c.Kubeconfig)
	if err != nil {
		return err
	}
	d.pods, err = discovery.NewPodWatcher(discovery.PodWatchConfig{
		Client:  client,
		Node:    c.K8sNodeName,
		Changed: d.podsChanged,
		Log:     d.log,
	})
	if err != nil {
		return err
	}
	d.synced = make(chan struct{})
	d.cands = make(map[int]*candidate)
	return nil
}

// k8sSyncWait is how long discovery waits for the first list of pods
// before it scans /proc: long enough for a reachable API server, short
// enough not to hold up the exe and unit rules when it is not.
const k8sSyncWait = 10 * time.Second

// Run discovers until ctx is cancelled, then waits for operations under way.
func (d *discoverer) Run(ctx context.Context) error {
	d.ctx = ctx
	var pw sync.WaitGroup
	if d.pods != nil {
		pw.Add(1)
		go func() {
			defer pw.Done()
			d.pods.Run(ctx)
		}()
		t := time.NewTimer(k8sSyncWait)
		select {
		case <-d.synced:
		case <-t.C:
			d.log.Warn("no list of pods yet, scanning processes anyway", "waited", k8sSyncWait)
		case <-ctx.Done():
		}
		t.Stop()
	}
	err := d.watcher.Run(ctx)
	pw.Wait()
	d.wg.Wait()
	return err
}

// podsChanged re-decides every candidate after the pods changed. Called
// from the pod watcher's goroutine.
func (d *discoverer) podsChanged() {
	if d.pods.Synced() {
		d.syncOnce.Do(func() { close(d.synced) })
	}
	d.kmu.Lock()
	defer d.kmu.Unlock()
	for _, c := range d.cands {
		d.decide(c)
	}
}

// decide attaches a candidate whose pod is selected and detaches one whose
// pod no longer is (label removed, pod deleted); d.kmu held.
func (d *discoverer) decide(c *candidate) {
	pc, ok := d.pods.Container(c.cid)
	sel := ok && d.podSel.Match(pc.Pod)
	switch {
	case sel && !c.on:
		c.on = true
		f := c.f
		f.Rule = d.podSel.String()
		d.after(f.PID, true, func() { d.attach(f, &pc) })
	case !sel && c.on:
		c.on = false
		reason := "pod deleted"
		if ok {
			reason = "pod not selected"
		}
		d.after(c.f.PID, false, func() { d.detach(c.f.ID, reason) })
	}
}

// after runs op for pid once the operation before it on that pid is done.
// Called from the watcher's goroutine, or with d.kmu held for candidates
// (whose operations the watcher schedules with d.kmu held too).
func (d *discoverer) after(pid int, cpuBound bool, op func()) {
	done := make(chan struct{})
	d.mu.Lock()
	prev := d.last[pid]
	d.last[pid] = done
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() {
			d.mu.Lock()
			if d.last[pid] == done {
				delete(d.last, pid)
			}
			d.mu.Unlock()
			close(done)
		}()
		if prev != nil {
			<-prev
		}
		if cpuBound {
			d.slots <- struct{}{}
			defer func() { <-d.slots }()
		}
		op()
	}()
}

// found schedules the attach of a selected process. It is accepted whatever
// comes of the attach: a refused process is not offered again either.
func (d *discoverer) found(f discovery.Found) error {
	if d.pods != nil && f.Rule == "exe="+k8sRule {
		rule, ok := d.userSel.Match(f.Exe, func() discovery.Units {
			u, _ := discovery.UnitsOfPID(f.PID)
			return u
		})
		if !ok {
			d.candidate(f)
			return nil
		}
		f.Rule = rule
	}
	d.after(f.PID, true, func() { d.attach(f, nil) })
	return nil
}

// candidate keeps a Go process in a container, attached while its pod is
// selected; processes outside containers are left alone.
func (d *discoverer) candidate(f discovery.Found) {
	cid, err := discovery.ContainerIDOfPID(f.PID)
	if err != nil || cid == "" {
		return
	}
	d.kmu.Lock()
	defer d.kmu.Unlock()
	c := &candidate{f: f, cid: cid}
	d.cands[f.PID] = c
	d.decide(c)
}

// attach instruments one selected process, in one log line either way; pod
// is the container it runs in when a pod selected it.
func (d *discoverer) attach(f discovery.Found, pod *discovery.PodContainer) {
	if d.ctx.Err() != nil {
		return // shutting down
	}
	if st, err := discovery.StartTime(f.PID); err != nil || st != f.Start {
		d.log.Debug("exited before attached", "pid", f.PID, "exe", f.Exe)
		return
	}
	if slices.Contains(d.mgr.Targets(), f.PID) {
		return // a --pid target, attached already
	}
	start := time.Now()
	proc, err := discovery.Describe(f.PID, d.service)
	if err != nil {
		d.log.Debug("exited before attached", "pid", f.PID, "reason", err)
		return
	}
	proc.GoVersion = f.GoVersion
	if pod != nil {
		d.describePod(f.PID, proc, *pod)
	}
	res, err := d.mgr.Attach(f.PID, proc)
	if err != nil {
		if st, serr := discovery.StartTime(f.PID); serr != nil || st != f.Start {
			// It exited while being attached: a short-lived command.
			d.log.Debug("exited before attached", "pid", f.PID, "exe", proc.ExeName)
			return
		}
		d.log.Error("cannot instrument", "pid", f.PID, "exe", proc.ExeName, "selected_by", f.Rule, "reason", err)
		return
	}
	for name, why := range res.Refused {
		d.log.Warn("probe refused", "pid", f.PID, "probe", name, "reason", why)
	}
	for _, why := range res.Skipped {
		d.log.Debug("optional hook not attached", "pid", f.PID, "hook", why)
	}
	args := []any{"pid", f.PID, "exe", proc.ExePath, "service", proc.ServiceName, "go", proc.GoVersion,
		"selected_by", f.Rule, "probes", res.Probes, "uprobes", res.Uprobes, "took", time.Since(start).Round(time.Millisecond)}
	if !f.Exec.IsZero() {
		args = append(args, "since_exec", time.Since(f.Exec).Round(time.Millisecond))
	}
	if pod != nil {
		args = append(args, "namespace", pod.Pod.Namespace, "pod", pod.Pod.Name, "container", pod.Container)
	}
	d.log.Info("attached", args...)
}

// describePod adds the pod's resource attributes to proc and, unless
// --service-name or the container's OTEL_SERVICE_NAME names the service,
// the pod's service name.
func (d *discoverer) describePod(pid int, proc *event.Process, pc discovery.PodContainer) {
	attrs, service := pc.Resource(d.pods.Owners(d.ctx, pc.Pod))
	proc.Resource = attrs
	if d.service == "" && discovery.Environ(pid)["OTEL_SERVICE_NAME"] == "" {
		proc.ServiceName = service
	}
}

// gone releases a process that exited (or exec'd another program) at once,
// rather than when the manager's exit watcher notices. When the manager was
// first, or the process was never attached, there is nothing to do or say.
func (d *discoverer) gone(id discovery.ID, reason string) {
	if d.pods != nil {
		d.kmu.Lock()
		defer d.kmu.Unlock()
		if c, ok := d.cands[id.PID]; ok && c.f.ID == id {
			delete(d.cands, id.PID)
		}
	}
	d.after(id.PID, false, func() { d.detach(id, reason) })
}

func (d *discoverer) detach(id discovery.ID, reason string) {
	if !slices.Contains(d.mgr.Targets(), id.PID) {
		return
	}
	start := time.Now()
	err := d.mgr.Detach(id.PID)
	switch {
	case err != nil && strings.HasSuffix(err.Error(), "not attached"):
		return // the manager's own exit watcher released it in the meantime
	case err != nil:
		d.log.Warn("detached", "pid", id.PID, "reason", reason, "err", err)
		return
	}
	d.log.Info("detached", "pid", id.PID, "reason", reason, "took", time.Since(start).Round(time.Millisecond))
	if d.released != nil {
		d.released(id.PID)
	}
	// cilium/ebpf unmaps a collection's .rodata only in a GC cleanup, and
	// the map lives as long as the mapping: collect now so the kernel frees
	// it now, not at some later GC.
	runtime.GC()
}
