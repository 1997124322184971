package agent

import (
	"github.com/golens/golens/discovery"
	"github.com/golens/golens/metrics"
	grpcprobe "github.com/golens/golens/probes/grpc"
	"github.com/golens/golens/probes/kernel"
	"github.com/golens/golens/probes/nethttp"
)

// selfStats gathers the golens_ metrics from every part, at each scrape.
func (a *Agent) selfStats() metrics.SelfStats {
	ps, ts := a.mgr.Stats(), a.tr.Stats()
	s := metrics.SelfStats{
		ProbeHits: ps.ProbeHits, EventsRead: ps.EventsRead, EventsLost: ps.EventsLost,
		DecodeErrors: ps.DecodeErrors, OrphanReturns: ps.OrphanReturns, Targets: ps.Targets,
		ProbesAttached: ps.Attached, ProbesRefused: ps.Refused,
		QueueLength: ts.Queued, SpansExported: ts.Exported, SpansDropped: ts.Dropped, SpansUnexported: ts.Unexported, SpansFailed: ts.Failed,
		SpansLinked: ts.Linked, SpansUnlinked: ts.Unlinked, SpansLookupBusy: ts.LookupBusy, SpansAmbiguous: ts.Ambiguous, SpansNoConn: ts.NoConn, LinkOverflow: ts.Overflow,
		SpansHeld: ts.Held, SamplingHeld: ts.SamplingHeld,
		PressureLevel: ts.PressureLevel, SpansThinned: ts.Thinned, PressureEntered: ts.PressureEntered,
		CPUYield: -1,
	}
	if y := a.yield; y != nil {
		s.CPUYield = 0
		if y.yielding.Load() {
			s.CPUYield = 1
		}
		s.CPUPolicyChanges = map[string]uint64{"idle": y.toIdle.Load(), "normal": y.toNormal.Load()}
	}
	if ps.Sockets != nil { // with --inject-context
		for _, c := range nethttp.InjectStats {
			s.Inject = append(s.Inject, metrics.InjectCount{Result: c.Result, Reason: c.Reason, N: ps.Sockets[c.Name]})
		}
		// gRPC client streams the uprobe side did not announce.
		if an, err := grpcprobe.AnnounceCounts(a.mgr); err == nil && an != nil {
			for _, c := range grpcprobe.AnnounceStats {
				if c.Result == "skipped" {
					s.Inject = append(s.Inject, metrics.InjectCount{Result: c.Result, Reason: c.Reason, N: an[c.Name]})
				}
			}
		}
	}
	s.KernelFeatures = make(map[string]bool, len(a.kern))
	for _, res := range a.kern {
		s.KernelFeatures[res.Name] = res.State == kernel.Present
	}
	s.KubernetesAPI = -1
	if d := a.disc; d != nil {
		ws := d.watcher.Stats()
		s.Discovery = &metrics.DiscoveryStats{Execs: ws.Execs, EventLosses: ws.EventLosses, Binaries: ws.Binaries,
			Rescans: make(map[string]uint64, len(ws.Rescans))}
		for i, n := range ws.Rescans {
			s.Discovery.Rescans[discovery.RescanReasons[i]] = n
		}
		if d.pods != nil {
			s.KubernetesAPI, s.KubernetesPods = 0, d.pods.Pods()
			if ok, _ := d.pods.Healthy(); ok {
				s.KubernetesAPI = 1
			}
		}
	}
	st := a.smp.Stats()
	s.SamplingDecisions = make(map[string]uint64, len(st.Decisions))
	for r, n := range st.Decisions {
		s.SamplingDecisions[string(r)] = n
	}
	s.SamplingReloads, s.SamplingReloadFailures = st.Reloads, st.ReloadFailures
	for _, r := range a.smp.Rates() {
		s.SamplingRates = append(s.SamplingRates, metrics.SamplingRate{Service: r.Service, Operation: r.Operation, Probability: r.Probability})
	}
	return s
}
