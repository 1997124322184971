// Package agent is golens' composition root: it wires discovery, the probe
// manager, the tracer, the metrics and the sampler from one Config, and
// runs them until its context ends. cmd/golens only turns flags, the
// environment and a config file into that Config.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/golens/golens/buildinfo"
	"github.com/golens/golens/discovery"
	"github.com/golens/golens/metrics"
	"github.com/golens/golens/otlp"
	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/probes/goruntime"
	grpcprobe "github.com/golens/golens/probes/grpc"
	"github.com/golens/golens/probes/kernel"
	"github.com/golens/golens/probes/nethttp"
	"github.com/golens/golens/sampler"
	"github.com/golens/golens/tracer"
)

// Agent is one running golens: its probes attached to the targets, its
// listeners bound. New builds it, Run runs it, Close releases what New took
// when Run never ran.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	kern kernel.Report

	met      *metrics.Metrics
	tr       *tracer.Tracer
	yield    *cpuYield // nil without --cpu-yield
	smp      *sampler.Sampler
	mgr      *probes.Manager
	disc     *discoverer      // nil without discovery rules
	watcher  *sampler.Watcher // nil without --sampling-strategies
	lns      listeners
	stopPush func(context.Context) error // the OTLP metric push's flush and stop
	attached int                         // --pid targets attached by New
	ran      bool
}

// Version is golens' version (buildinfo.Version, one for every signal).
func Version() string { return buildinfo.Version }

// New checks the kernel, binds the listeners, sets up export and attaches
// the --pid targets. It logs why it fails, in one line, and returns an
// error matching ErrKernel or ErrUsage when a restart cannot help.
func New(cfg Config) (_ *Agent, err error) {
	a := &Agent{cfg: cfg, log: cfg.Log, stopPush: func(context.Context) error { return nil }}
	if a.log == nil {
		a.log = slog.Default()
	}
	// Before anything is attached: a kernel that cannot run every probe
	// must not leave a target half-instrumented.
	a.kern = kernel.ProbeRunning()
	if err := logKernel(a.log, a.kern, cfg.InjectContext == InjectOn); err != nil {
		return nil, err
	}
	inject, why := injectOnKernel(cfg.InjectContext, a.kern)
	if why != nil {
		a.log.Info("no context injection on the wire: this kernel cannot do it (--inject-context=auto)", "kernel", kernel.Release(), "err", why)
	}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()

	a.met = metrics.New(metrics.Options{Buckets: cfg.DurationBuckets, IdleTTL: cfg.MetricsIdleTTL, ResourceLabels: cfg.MetricsResourceLabels, Log: a.log})
	a.smp = sampler.New(sampler.Config{CriticalTTL: cfg.SamplingCriticalTTL, SLA: sampler.SLAConfig{P95: cfg.SamplingSLAP95}}, nil)
	if err := a.lns.open(cfg, a.met, a.smp, a.log); err != nil {
		return nil, err
	}
	exp, err := tracer.NewExporter(context.Background(), tracer.ExportConfig{
		Exporter:   cfg.Exporter,
		Endpoint:   cfg.OTLPEndpoint,
		Insecure:   cfg.OTLPInsecure,
		CAFile:     cfg.OTLPCAFile,
		ClientCert: cfg.OTLPClientCert, ClientKey: cfg.OTLPClientKey, Compression: cfg.OTLPCompression,
		Log:     a.log,
		Headers: cfg.OTLPHeaders,
		Timeout: cfg.OTLPTimeout,
	}, os.Stdout)
	if err != nil {
		a.log.Error("cannot set up span export", "err", err)
		return nil, usage(err)
	}
	if cfg.SamplingStrategies != "" {
		a.watcher, err = sampler.NewWatcher(cfg.SamplingStrategies, a.smp, sampler.WatchConfig{Logger: a.log})
		if err != nil {
			a.log.Error("cannot use sampling strategies", "file", cfg.SamplingStrategies, "err", err)
			return nil, usage(err)
		}
	}
	if cfg.OTLPMetrics {
		if err := a.pushMetrics(); err != nil {
			a.log.Error("cannot set up metric export", "err", err)
			return nil, usage(err)
		}
	}
	// The linker asks the manager, made next, for the targets (a.callers):
	// it is called only once events flow, in Run.
	a.tr = tracer.New(exp, tracer.Options{QueueSize: cfg.ExportQueue, ExportTimeout: cfg.OTLPTimeout, Log: a.log,
		Linker: tracer.NewLinker(a.callers), Sampler: a.smp})

	var features []string
	if cfg.CPUYield {
		a.yield = &cpuYield{log: a.log, fill: func() float64 { return a.mgr.RingFill() }}
	}
	if cfg.TrackGoroutines {
		features = append(features, probes.FeatureGoroutines)
	}
	if inject != InjectOff {
		features = append(features, probes.FeatureInject)
	}
	a.mgr = probes.NewManager([]probes.Spec{nethttp.Probe, grpcprobe.Probe, goruntime.Probe}, features, a.record, a.log)
	// The socket programs of --inject-context are attached here, before
	// any target: with "on" golens would rather not start than run
	// without them; with "auto" the manager said why it goes without.
	// Other errors are the attaches' to report, per target.
	if err := a.mgr.Open(); err != nil && inject == InjectOn {
		a.log.Error("cannot inject context on the wire", "err", err)
		return nil, err
	}
	for _, pid := range cfg.PIDs {
		if a.attach(context.Background(), pid, selection{}) {
			a.attached++
		}
	}
	if a.attached == 0 && !cfg.Discover.Active() {
		return nil, usage(errors.New("no target could be instrumented"))
	}
	if cfg.Discover.Active() {
		// Ready once the initial scan's targets are attached.
		if a.disc, err = newDiscoverer(a, cfg.Discover, a.lns.metrics.SetReady); err != nil {
			a.log.Error("cannot discover processes", "err", err)
			return nil, usage(err)
		}
		if pods := a.disc.pods; pods != nil {
			a.lns.metrics.SetHealthNote(func() string {
				if ok, why := pods.Healthy(); !ok {
					return "kubernetes API unreachable (known pods stay instrumented): " + why
				}
				return ""
			})
		}
	}
	// Last: selfStats reads every part, and the OTLP push may gather
	// before Run.
	a.met.RegisterSelf(a.selfStats)
	return a, nil
}

// pushMetrics starts the OTLP push of the metrics, to the span exporter's
// collector with its TLS and headers.
func (a *Agent) pushMetrics() error {
	c := a.cfg
	tlsCfg, err := otlp.ClientTLS(c.OTLPCAFile, c.OTLPClientCert, c.OTLPClientKey)
	if err != nil {
		return err
	}
	target, creds, err := otlp.Connection(c.OTLPEndpoint, c.OTLPInsecure, tlsCfg)
	if err != nil {
		return err
	}
	stop, err := a.met.PushOTLP(context.Background(), metrics.OTLPConfig{
		Target: target, Credentials: creds, Headers: c.OTLPHeaders, Compression: c.OTLPCompression,
		Interval: c.OTLPMetricsInterval, Version: Version(),
	})
	if err != nil {
		return err
	}
	a.stopPush = stop
	return nil
}

// record hands an event to the metrics and the tracer (the manager's
// handler), with one reading of the clock for both.
func (a *Agent) record(ev event.Event) {
	now := time.Now()
	a.met.RecordAt(ev, now)
	a.tr.RecordAt(ev, now)
}

// callers tells the linker which target owns each connection's client end.
func (a *Agent) callers(qs []tracer.Lookup) []tracer.Caller {
	conns := make([]discovery.Accepted, len(qs))
	for i, q := range qs {
		conns[i] = discovery.Accepted{Server: q.Callee, Peer: q.Peer}
	}
	callers := make([]tracer.Caller, len(qs))
	for i, h := range discovery.SocketOwners(conns, a.mgr.Targets()) {
		callers[i] = tracer.Caller{PID: h.PID, OnNode: h.OnNode, Neighbours: h.Neighbours, Ambiguous: h.Ambiguous,
			Conn: tracer.Conn{NetNS: h.Conn.NetNS, Local: h.Conn.Local, Remote: h.Conn.Remote}}
		// One line per callee and peer at most every few seconds (the
		// linker caches the answer): why a callee was or was not linked.
		a.log.Debug("caller lookup", "callee", qs[i].Callee, "peer", qs[i].Peer, "caller", h.PID, "on_node", h.OnNode,
			"ambiguous", h.Ambiguous, "client_local", h.Conn.Local, "client_remote", h.Conn.Remote, "neighbours", h.Neighbours)
	}
	return callers
}

// Run serves, reads events and discovers until ctx is cancelled, then
// detaches every probe and flushes the spans (for at most
// Config.ShutdownGrace). A clean stop returns nil.
func (a *Agent) Run(ctx context.Context) error {
	a.ran = true
	defer a.mgr.Close()
	discover := a.disc != nil
	a.log.Info("golens running", "targets", a.attached, "kernel", kernel.Release(), "kernel_missing", a.kern.Missing(), "discover", discover,
		"inject_context", a.mgr.Feature(probes.FeatureInject), "exporter", a.cfg.Exporter, "otlp_endpoint", a.cfg.OTLPEndpoint,
		"metrics", "http://"+a.lns.metrics.Addr()+"/metrics")
	// Ready only once the start-up line is out: whoever waits on /readyz
	// (an orchestrator, a test) then also finds what golens runs with.
	// With discovery, the initial scan says when.
	if !discover {
		a.lns.metrics.SetReady()
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.mgr.Run(gctx) })
	g.Go(func() error { return a.met.Run(gctx) })
	if a.yield != nil {
		g.Go(func() error { return a.yield.run(gctx) })
	}
	a.lns.serve(gctx, g)
	if a.watcher != nil {
		g.Go(func() error { return a.watcher.Run(gctx) })
	}
	if discover {
		g.Go(func() error { return a.disc.Run(gctx) })
	}
	g.Go(func() error {
		// What is left of a target released after it exited.
		for {
			select {
			case <-gctx.Done():
				return nil
			case pid := <-a.mgr.Exited():
				a.tr.Forget(pid)
			}
		}
	})
	runErr := g.Wait()
	a.log.Info("shutting down: probes detached, flushing spans")
	a.flush()
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		a.log.Error("golens stopped", "err", runErr)
		return fmt.Errorf("golens stopped: %w", runErr)
	}
	a.log.Info("golens stopped")
	return nil
}

// flush exports the spans still queued and the metrics' last push, for at
// most Config.ShutdownGrace.
func (a *Agent) flush() {
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownGrace)
	defer cancel()
	if a.tr != nil {
		if err := a.tr.Shutdown(sctx); err != nil {
			a.log.Warn("span flush incomplete; counted in golens_spans_dropped_total{reason=\"shutdown\"}",
				"err", err, "unexported", a.tr.Stats().Unexported, "shutdown_timeout", a.cfg.ShutdownGrace)
		}
	}
	if err := a.stopPush(sctx); err != nil {
		a.log.Warn("metric push flush incomplete", "err", err)
	}
}

// Close releases what New took when Run never ran: it detaches the probes,
// flushes what was recorded and closes the listeners. After Run it does
// nothing more (Run released everything).
func (a *Agent) Close() error {
	if a.ran {
		return nil
	}
	a.ran = true
	var err error
	if a.mgr != nil {
		err = a.mgr.Close()
	}
	a.flush()
	return errors.Join(err, a.lns.close())
}
