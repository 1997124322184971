package agent

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/golens/golens/discovery"
	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/event"
)

// discoverer attaches the processes discovery selects, and releases them
// when they exit. Both run beside the watcher, so that neither a burst of
// replicas starting nor the kernel retiring an exited target's uprobes (an
// RCU grace period per link, ~300 ms here) delays the next attach; what is
// done to one pid still happens in the order the events came.
type discoverer struct {
	agent   *Agent // attaches, detaches, and forgets released targets
	watcher *discovery.Watcher
	log     *slog.Logger

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

// newDiscoverer prepares discovery for a's targets; ready is called once
// the targets the initial scan selected were attached (or refused).
func newDiscoverer(a *Agent, c DiscoverConfig, ready func()) (*discoverer, error) {
	sel, err := discovery.NewSelector(c.Exe, c.SystemdUnit)
	if err != nil {
		return nil, err
	}
	d := &discoverer{
		agent: a, log: a.log,
		last:  make(map[int]chan struct{}),
		slots: make(chan struct{}, runtime.NumCPU()),
	}
	if c.K8s() {
		if err := d.setupK8s(c); err != nil {
			return nil, err
		}
		d.userSel = sel
		if sel, err = discovery.NewSelector(append(slices.Clone(c.Exe), k8sRule), c.SystemdUnit); err != nil {
			return nil, err
		}
	}
	d.watcher, err = discovery.NewWatcher(discovery.WatchConfig{
		Selector: sel,
		Found:    d.found,
		Gone:     d.gone,
		Ready: func(n int) {
			d.wg.Wait() // the initial scan's attaches
			args := []any{"exe", c.Exe, "systemd_unit", c.SystemdUnit, "selected", n, "targets", len(d.agent.mgr.Targets())}
			if d.pods != nil {
				args = append(args, "k8s", d.podSel.String(), "node", c.K8sNodeName, "pods", d.pods.Pods())
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
		d.after(f.PID, true, func() { d.attach(selection{found: f, pod: &pc}) })
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
	d.after(f.PID, true, func() { d.attach(selection{found: f}) })
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

// attach instruments a selected process unless it is gone or attached
// already.
func (d *discoverer) attach(sel selection) {
	if d.ctx.Err() != nil {
		return // shutting down
	}
	f := sel.found
	if sel.exited() {
		d.log.Debug("exited before attached", "pid", f.PID, "exe", f.Exe)
		return
	}
	if slices.Contains(d.agent.mgr.Targets(), f.PID) {
		return // a --pid target, attached already
	}
	d.agent.attach(d.ctx, f.PID, sel)
}

// describePod adds the pod's resource attributes to proc and, unless
// --service-name or the container's OTEL_SERVICE_NAME names the service,
// the pod's service name.
func (d *discoverer) describePod(ctx context.Context, pid int, proc *event.Process, pc discovery.PodContainer) {
	attrs, service := pc.Resource(d.pods.Owners(ctx, pc.Pod))
	proc.Resource = attrs
	if d.agent.cfg.ServiceName == "" && discovery.Environ(pid)["OTEL_SERVICE_NAME"] == "" {
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
	mgr := d.agent.mgr
	if !slices.Contains(mgr.Targets(), id.PID) {
		return
	}
	start := time.Now()
	err := mgr.Detach(id.PID)
	switch {
	case errors.Is(err, probes.ErrNotAttached):
		return // the manager's own exit watcher released it in the meantime
	case err != nil:
		d.log.Warn("detached", "pid", id.PID, "reason", reason, "err", err)
		return
	}
	d.log.Info("detached", "pid", id.PID, "reason", reason, "took", time.Since(start).Round(time.Millisecond))
	// What is left of it in the tracer, which the manager's exit watcher
	// would otherwise have passed on.
	d.agent.tr.Forget(id.PID)
	// cilium/ebpf unmaps a collection's .rodata only in a GC cleanup, and
	// the map lives as long as the mapping: collect now so the kernel frees
	// it now, not at some later GC.
	runtime.GC()
}
