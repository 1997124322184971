package main

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golens/golens/discovery"
	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/nethttp"
)

// DiscoverConfig selects processes to instrument as they start (config file
// key "discover"). The file's rules apply with --discover or enabled: true;
// --exe and --systemd-unit on the command line apply by themselves.
type DiscoverConfig struct {
	Enabled     bool     `yaml:"enabled"`
	Exe         []string `yaml:"exe"`          // executable path globs
	SystemdUnit []string `yaml:"systemd_unit"` // systemd unit globs
	// Kubernetes pod opt-in, the keys deploy/kubernetes and the chart set.
	// Not implemented yet: golens refuses them with a clear error rather
	// than run without selecting anything.
	K8sOptInLabel string   `yaml:"k8s_opt_in_label"`
	K8sNamespaces []string `yaml:"k8s_namespaces"`

	ignored int // rules in the file left off because discovery is not enabled
}

// active tells whether any rule selects processes.
func (d DiscoverConfig) active() bool { return len(d.Exe)+len(d.SystemdUnit) > 0 }

// noTarget says why nothing at all is selected.
func (d DiscoverConfig) noTarget() error {
	if d.ignored > 0 {
		return errors.New("no target: the config file's discover rules apply only with --discover (or discover.enabled: true)")
	}
	return errors.New("no target: give --pid PID, --exe GLOB or --systemd-unit GLOB (see --help)")
}

// resolveDiscover merges the file's rules (when enabled) with the command
// line's and checks them.
func resolveDiscover(file DiscoverConfig, exe, units []string) (DiscoverConfig, error) {
	d := DiscoverConfig{Enabled: file.Enabled}
	if file.K8sOptInLabel != "" || len(file.K8sNamespaces) > 0 {
		return d, errors.New("discover.k8s_opt_in_label / k8s_namespaces: Kubernetes pod opt-in is not implemented yet; select processes with discover.exe or discover.systemd_unit")
	}
	if file.Enabled {
		d.Exe = append(d.Exe, file.Exe...)
		d.SystemdUnit = append(d.SystemdUnit, file.SystemdUnit...)
	} else {
		d.ignored = len(file.Exe) + len(file.SystemdUnit)
	}
	d.Exe = append(d.Exe, exe...)
	d.SystemdUnit = append(d.SystemdUnit, units...)
	if d.Enabled && !d.active() {
		return d, errors.New("--discover: no rule (give --exe GLOB, --systemd-unit GLOB, or discover: {exe: [...], systemd_unit: [...]} in --config)")
	}
	if _, err := discovery.NewSelector(d.Exe, d.SystemdUnit); err != nil {
		return d, err
	}
	return d, nil
}

// discoverer attaches the processes discovery selects, and releases them
// when they exit. Both run beside the watcher, so that neither a burst of
// replicas starting nor the kernel retiring an exited target's uprobes (an
// RCU grace period per link, ~300 ms here) delays the next attach; what is
// done to one pid still happens in the order the events came.
type discoverer struct {
	watcher  *discovery.Watcher
	mgr      *probes.Manager
	injector *nethttp.Injector // with --inject-context
	service  string            // --service-name
	log      *slog.Logger
	// released is told of every target released here rather than by the
	// manager's own exit watcher (tracer state, context injection).
	released func(pid int)

	ctx   context.Context // Run's: nothing is attached once it is done
	slots chan struct{}   // attaches at once: one per CPU, they are CPU-bound
	mu    sync.Mutex
	last  map[int]chan struct{} // pid -> closed when its latest operation is done
	wg    sync.WaitGroup
}

// newDiscovery prepares discovery for mgr's targets; ready is called once
// the targets the initial scan selected were attached (or refused).
func newDiscovery(cfg Config, mgr *probes.Manager, injector *nethttp.Injector, released func(pid int), ready func(), log *slog.Logger) (*discoverer, error) {
	sel, err := discovery.NewSelector(cfg.Discover.Exe, cfg.Discover.SystemdUnit)
	if err != nil {
		return nil, err
	}
	d := &discoverer{
		mgr: mgr, injector: injector, service: cfg.ServiceName, log: log, released: released,
		last:  make(map[int]chan struct{}),
		slots: make(chan struct{}, runtime.NumCPU()),
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
			d.log.Info("discovery running", "exe", cfg.Discover.Exe, "systemd_unit", cfg.Discover.SystemdUnit, "selected", n, "targets", len(d.mgr.Targets()))
			ready()
		},
		Log: d.log,
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Run discovers until ctx is cancelled, then waits for operations under way.
func (d *discoverer) Run(ctx context.Context) error {
	d.ctx = ctx
	err := d.watcher.Run(ctx)
	d.wg.Wait()
	return err
}

// after runs op for pid once the operation before it on that pid is done.
// Called from the watcher's goroutine only.
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
	d.after(f.PID, true, func() { d.attach(f) })
	return nil
}

// attach instruments one selected process, in one log line either way.
func (d *discoverer) attach(f discovery.Found) {
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
	if d.injector != nil {
		if err := d.injector.Add(f.PID); err != nil {
			d.log.Warn("no context injection for target", "pid", f.PID, "err", err)
		}
	}
	args := []any{"pid", f.PID, "exe", proc.ExePath, "service", proc.ServiceName, "go", proc.GoVersion,
		"selected_by", f.Rule, "probes", res.Probes, "uprobes", res.Uprobes, "took", time.Since(start).Round(time.Millisecond)}
	if !f.Exec.IsZero() {
		args = append(args, "since_exec", time.Since(f.Exec).Round(time.Millisecond))
	}
	d.log.Info("attached", args...)
}

// gone releases a process that exited (or exec'd another program) at once,
// rather than when the manager's exit watcher notices. When the manager was
// first, or the process was never attached, there is nothing to do or say.
func (d *discoverer) gone(id discovery.ID, reason string) {
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
