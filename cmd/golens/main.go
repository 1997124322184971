// Command golens is the node agent: it attaches eBPF probes to running Go
// services and exports their spans and metrics.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
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

func main() {
	os.Exit(run(os.Args[1:]))
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return buildinfo.Version
}

func newLogger(cfg Config) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cfg.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", cfg.LogFormat)
}

// exitUsage (sysexits' EX_USAGE) is bad usage, or no --pid target that can
// be instrumented: restarting cannot fix it. Not 2, which is what the Go
// runtime exits with on a fatal error or an unrecovered panic, a crash a
// restart does fix.
const exitUsage = 64

// exitKernel (sysexits' EX_UNAVAILABLE) is a kernel that lacks a feature
// golens needs, or one --inject-context needs: restarting cannot fix it
// either, and an operator must tell it from bad usage.
const exitKernel = 69

// run returns the exit status: 0 after a clean shutdown, exitUsage for bad
// usage or when no target could be instrumented, exitKernel when the kernel
// lacks what golens needs, 1 for other failures.
func run(args []string) int {
	cfg, err := parseConfig(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "golens:", err)
		return exitUsage
	}
	log, err := newLogger(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "golens:", err)
		return exitUsage
	}
	// Before anything is attached: a kernel that cannot run every probe
	// must not leave a target half-instrumented.
	kern := kernel.ProbeRunning()
	if !logKernel(log, kern, cfg.InjectContext == InjectOn) {
		return exitKernel
	}
	inject, why := injectOnKernel(cfg.InjectContext, kern)
	if why != nil {
		log.Info("no context injection on the wire: this kernel cannot do it (--inject-context=auto)", "kernel", kernel.Release(), "err", why)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	met := metrics.New(metrics.Options{Buckets: cfg.DurationBuckets, IdleTTL: cfg.MetricsIdleTTL, ResourceLabels: cfg.MetricsResourceLabels, Log: log})
	srv, err := met.Listen(cfg.MetricsAddr)
	if err != nil {
		log.Error("cannot serve metrics", "addr", cfg.MetricsAddr, "err", err)
		return 1
	}
	var pprofLn net.Listener
	if cfg.Pprof {
		if pprofLn, err = net.Listen("tcp", cfg.PprofAddr); err != nil {
			log.Error("cannot serve pprof", "addr", cfg.PprofAddr, "err", err)
			return 1
		}
		if !loopback(pprofLn.Addr()) {
			log.Warn("pprof served beyond loopback: whoever reaches it reads golens' goroutine stacks and memory profile", "addr", pprofLn.Addr().String())
		}
	}
	exp, err := tracer.NewExporter(ctx, tracer.ExportConfig{
		Exporter:   cfg.Exporter,
		Endpoint:   cfg.OTLPEndpoint,
		Insecure:   cfg.OTLPInsecure,
		CAFile:     cfg.OTLPCAFile,
		ClientCert: cfg.OTLPClientCert, ClientKey: cfg.OTLPClientKey, Compression: cfg.OTLPCompression,
		Log:     log,
		Headers: cfg.OTLPHeaders,
		Timeout: cfg.OTLPTimeout,
	}, os.Stdout)
	if err != nil {
		log.Error("cannot set up span export", "err", err)
		return exitUsage
	}
	// Set once the manager exists: the linker asks it for the targets.
	var targets func() []int
	linker := tracer.NewLinker(func(qs []tracer.Lookup) []tracer.Caller {
		conns := make([]discovery.Accepted, len(qs))
		for i, q := range qs {
			conns[i] = discovery.Accepted{Server: q.Callee, Peer: q.Peer}
		}
		callers := make([]tracer.Caller, len(qs))
		for i, h := range discovery.SocketOwners(conns, targets()) {
			callers[i] = tracer.Caller{PID: h.PID, OnNode: h.OnNode, Neighbours: h.Neighbours,
				Conn: tracer.Conn{NetNS: h.Conn.NetNS, Local: h.Conn.Local, Remote: h.Conn.Remote}}
		}
		return callers
	})
	smp := sampler.New(sampler.Config{CriticalTTL: cfg.SamplingCriticalTTL, SLA: sampler.SLAConfig{P95: cfg.SamplingSLAP95}}, nil)
	var watcher *sampler.Watcher
	if cfg.SamplingStrategies != "" {
		watcher, err = sampler.NewWatcher(cfg.SamplingStrategies, smp, sampler.WatchConfig{Logger: log})
		if err != nil {
			log.Error("cannot use sampling strategies", "file", cfg.SamplingStrategies, "err", err)
			return exitUsage
		}
	}
	var samplingSrv *http.Server
	var samplingLn net.Listener
	if cfg.SamplingServerAddr != "" {
		samplingLn, err = net.Listen("tcp", cfg.SamplingServerAddr)
		if err != nil {
			log.Error("cannot serve remote sampling", "addr", cfg.SamplingServerAddr, "err", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.Handle("/sampling", smp.Handler())
		mux.Handle("/", smp.Handler())
		samplingSrv = metrics.NewHTTPServer(mux)
	}
	stopMetricsPush := func(context.Context) error { return nil }
	if cfg.OTLPMetrics {
		tlsCfg, err := otlp.ClientTLS(cfg.OTLPCAFile, cfg.OTLPClientCert, cfg.OTLPClientKey)
		if err != nil {
			log.Error("cannot set up metric export", "err", err)
			return exitUsage
		}
		target, creds, err := otlp.Connection(cfg.OTLPEndpoint, cfg.OTLPInsecure, tlsCfg)
		if err != nil {
			log.Error("cannot set up metric export", "err", err)
			return exitUsage
		}
		stopMetricsPush, err = met.PushOTLP(ctx, metrics.OTLPConfig{
			Target: target, Credentials: creds, Headers: cfg.OTLPHeaders, Compression: cfg.OTLPCompression,
			Interval: cfg.OTLPMetricsInterval, Version: buildVersion(),
		})
		if err != nil {
			log.Error("cannot set up metric export", "err", err)
			return exitUsage
		}
	}
	tr := tracer.New(exp, tracer.Options{QueueSize: cfg.ExportQueue, ExportTimeout: cfg.OTLPTimeout, Log: log, Linker: linker, Sampler: smp})

	var features []string
	if cfg.TrackGoroutines {
		features = append(features, probes.FeatureGoroutines)
	}
	if inject != InjectOff {
		features = append(features, probes.FeatureInject)
	}
	mgr := probes.NewManager([]probes.Spec{nethttp.Probe, grpcprobe.Probe, goruntime.Probe}, features, func(ev event.Event) {
		met.Record(ev)
		tr.Record(ev)
	}, log)
	defer mgr.Close()
	targets = mgr.Targets
	// The socket programs of --inject-context are attached here, before
	// any target: with "on" golens would rather not start than run
	// without them; with "auto" the manager said why it goes without.
	// Other errors are the attaches' to report, per target.
	if err := mgr.Open(); err != nil && inject == InjectOn {
		log.Error("cannot inject context on the wire", "err", err)
		return 1
	}
	var disc *discoverer // with selectors; set before serving
	met.RegisterSelf(func() metrics.SelfStats {
		ps, ts := mgr.Stats(), tr.Stats()
		s := metrics.SelfStats{
			ProbeHits: ps.ProbeHits, EventsRead: ps.EventsRead, EventsLost: ps.EventsLost,
			DecodeErrors: ps.DecodeErrors, OrphanReturns: ps.OrphanReturns, Targets: ps.Targets,
			ProbesAttached: ps.Attached, ProbesRefused: ps.Refused,
			QueueLength: ts.Queued, SpansExported: ts.Exported, SpansDropped: ts.Dropped, SpansUnexported: ts.Unexported, SpansFailed: ts.Failed,
			SpansLinked: ts.Linked, SpansUnlinked: ts.Unlinked, SpansLookupBusy: ts.LookupBusy, SpansAmbiguous: ts.Ambiguous, SpansNoConn: ts.NoConn, LinkOverflow: ts.Overflow,
			SpansHeld: ts.Held, SamplingHeld: ts.SamplingHeld,
			PressureLevel: ts.PressureLevel, SpansThinned: ts.Thinned, PressureEntered: ts.PressureEntered,
		}
		if ps.Sockets != nil { // with --inject-context
			for _, c := range nethttp.InjectStats {
				s.Inject = append(s.Inject, metrics.InjectCount{Result: c.Result, Reason: c.Reason, N: ps.Sockets[c.Name]})
			}
			// gRPC client streams the uprobe side did not announce.
			if an, err := grpcprobe.AnnounceCounts(mgr); err == nil && an != nil {
				for _, c := range grpcprobe.AnnounceStats {
					if c.Result == "skipped" {
						s.Inject = append(s.Inject, metrics.InjectCount{Result: c.Result, Reason: c.Reason, N: an[c.Name]})
					}
				}
			}
		}
		s.KernelFeatures = make(map[string]bool, len(kern))
		for _, res := range kern {
			s.KernelFeatures[res.Name] = res.State == kernel.Present
		}
		s.KubernetesAPI = -1
		if disc != nil {
			ws := disc.watcher.Stats()
			s.Discovery = &metrics.DiscoveryStats{Execs: ws.Execs, EventLosses: ws.EventLosses, Binaries: ws.Binaries,
				Rescans: make(map[string]uint64, len(ws.Rescans))}
			for i, n := range ws.Rescans {
				s.Discovery.Rescans[discovery.RescanReasons[i]] = n
			}
		}
		if disc != nil && disc.pods != nil {
			s.KubernetesAPI, s.KubernetesPods = 0, disc.pods.Pods()
			if ok, _ := disc.pods.Healthy(); ok {
				s.KubernetesAPI = 1
			}
		}
		st := smp.Stats()
		s.SamplingDecisions = make(map[string]uint64, len(st.Decisions))
		for r, n := range st.Decisions {
			s.SamplingDecisions[string(r)] = n
		}
		s.SamplingReloads, s.SamplingReloadFailures = st.Reloads, st.ReloadFailures
		for _, r := range smp.Rates() {
			s.SamplingRates = append(s.SamplingRates, metrics.SamplingRate{Service: r.Service, Operation: r.Operation, Probability: r.Probability})
		}
		return s
	})

	attached := 0
	for _, pid := range cfg.PIDs {
		if attach(mgr, pid, cfg.ServiceName, log) {
			attached++
		}
	}
	if attached == 0 && !cfg.Discover.active() {
		tr.Shutdown(context.Background())
		return exitUsage
	}
	// What is left of a target released after it exited.
	release := tr.Forget
	if cfg.Discover.active() {
		// Ready once the initial scan's targets are attached.
		if disc, err = newDiscovery(cfg, mgr, release, srv.SetReady, log); err != nil {
			log.Error("cannot discover processes", "err", err)
			return exitUsage
		}
		if disc.pods != nil {
			srv.SetHealthNote(func() string {
				if ok, why := disc.pods.Healthy(); !ok {
					return "kubernetes API unreachable (known pods stay instrumented): " + why
				}
				return ""
			})
		}
	}
	log.Info("golens running", "targets", attached, "kernel", kernel.Release(), "kernel_missing", kern.Missing(), "discover", cfg.Discover.active(),
		"inject_context", mgr.Feature(probes.FeatureInject), "exporter", cfg.Exporter, "otlp_endpoint", cfg.OTLPEndpoint, "metrics", "http://"+srv.Addr()+"/metrics")
	// Ready only once the start-up line is out: whoever waits on /readyz
	// (an orchestrator, a test) then also finds what golens runs with.
	if !cfg.Discover.active() {
		srv.SetReady()
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return mgr.Run(gctx) })
	g.Go(func() error { return srv.Serve(gctx) })
	g.Go(func() error { return met.Run(gctx) })
	if watcher != nil {
		g.Go(func() error { return watcher.Run(gctx) })
	}
	if disc != nil {
		g.Go(func() error { return disc.Run(gctx) })
	}
	if samplingSrv != nil {
		g.Go(func() error { return metrics.Serve(gctx, samplingSrv, samplingLn) })
	}
	if pprofLn != nil {
		g.Go(func() error { return metrics.Serve(gctx, metrics.NewPprofServer(), pprofLn) })
	}
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case pid := <-mgr.Exited():
				release(pid)
			}
		}
	})
	g.Go(func() error {
		// A second signal while shutting down means "now".
		<-gctx.Done()
		stop()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		go func() {
			<-sig
			log.Warn("second signal: exiting without flushing")
			os.Exit(1)
		}()
		return nil
	})
	runErr := g.Wait()
	log.Info("shutting down: probes detached, flushing spans")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := tr.Shutdown(sctx); err != nil {
		log.Warn("span flush incomplete; counted in golens_spans_dropped_total{reason=\"shutdown\"}",
			"err", err, "unexported", tr.Stats().Unexported, "shutdown_timeout", cfg.ShutdownGrace)
	}
	if err := stopMetricsPush(sctx); err != nil {
		log.Warn("metric push flush incomplete", "err", err)
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		log.Error("golens stopped", "err", runErr)
		return 1
	}
	log.Info("golens stopped")
	return 0
}

// logKernel says, one line each, which kernel features are missing and
// what that disables; false, after one error line, when golens cannot run.
func logKernel(log *slog.Logger, kern kernel.Report, inject bool) bool {
	for _, res := range kern {
		switch res.State {
		case kernel.Missing:
			log.Warn("kernel feature missing", "feature", res.Name, "since", cmp.Or(res.Since, "?"), "effect", res.Without)
		case kernel.Unknown:
			log.Warn("kernel feature not probed", "feature", res.Name, "err", res.Err)
		}
	}
	if err := kern.Check(inject); err != nil {
		log.Error("cannot run on this kernel", "kernel", kernel.Release(), "floor", "Linux "+kernel.Floor(), "err", err)
		return false
	}
	return true
}

// injectOnKernel decides what --inject-context asks of a kernel golens
// runs on (logKernel passed it): auto turns off where the kernel lacks a
// feature the socket programs need, and says why; on and off stay. A
// feature whose probe could not tell turns nothing off: the manager's
// attach of the socket programs is the test then.
func injectOnKernel(mode InjectMode, kern kernel.Report) (InjectMode, error) {
	if mode != InjectAuto {
		return mode, nil
	}
	if err := kern.Check(true); err != nil {
		return InjectOff, err
	}
	return InjectAuto, nil
}

// loopback reports whether a is reachable from this host only.
func loopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// attach instruments one pid and says so in one log line either way.
func attach(mgr *probes.Manager, pid int, service string, log *slog.Logger) bool {
	start := time.Now()
	proc, err := discovery.Describe(pid, service)
	if err != nil {
		log.Error("cannot instrument", "pid", pid, "reason", err)
		return false
	}
	res, err := mgr.Attach(pid, proc)
	if err != nil {
		log.Error("cannot instrument", "pid", pid, "exe", proc.ExeName, "reason", err)
		return false
	}
	for name, why := range res.Refused {
		log.Warn("probe refused", "pid", pid, "probe", name, "reason", why)
	}
	for _, why := range res.Skipped {
		log.Info("optional hook not attached", "pid", pid, "hook", why)
	}
	log.Info("attached", "pid", pid, "exe", proc.ExeName, "service", proc.ServiceName, "go", proc.GoVersion,
		"probes", res.Probes, "uprobes", res.Uprobes, "took", time.Since(start).Round(time.Millisecond))
	return true
}
