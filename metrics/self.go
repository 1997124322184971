package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// SelfStats is a snapshot of golens' own counters, gathered at scrape time.
type SelfStats struct {
	ProbeHits      uint64
	EventsRead     uint64
	EventsLost     uint64
	DecodeErrors   uint64
	OrphanReturns  uint64
	Targets        int
	ProbesAttached map[string]int // probe -> targets
	ProbesRefused  map[string]int // reason -> count
	QueueLength    int
	SpansExported  uint64
	SpansDropped   uint64 // the export queue was full
	// SpansUnexported were queued or being sent when the shutdown
	// timeout ran out.
	SpansUnexported uint64
	SpansFailed     uint64
	// CPUYield is whether --cpu-yield is on and golens yields now (1), is
	// on and at normal priority because it was behind (0), or is off
	// (-1); CPUPolicyChanges counts switches by the policy switched to.
	CPUYield         int
	CPUPolicyChanges map[string]uint64
	// PressureLevel is the export queue's backpressure level (0: none);
	// SpansThinned the healthy-path spans it dropped at each level (by
	// index, 0 unused), PressureEntered the times each level was entered.
	PressureLevel                 int
	SpansThinned, PressureEntered []uint64
	SpansLinked                   uint64 // server spans joined to a caller's trace on this node
	SpansUnlinked                 uint64 // server spans of a watched caller whose client span was not found
	// SpansLookupBusy are server spans exported unlinked because the
	// owner of their peer's socket could not be looked up in time.
	SpansLookupBusy uint64
	// SpansAmbiguous are server spans exported unlinked because more than
	// one call of their caller could have been theirs.
	SpansAmbiguous uint64
	// SpansNoConn are server spans exported unlinked because their
	// caller's call did not say which connection it went out on.
	SpansNoConn  uint64
	LinkOverflow uint64 // traces released early: the linker held too many spans
	SpansHeld    int    // spans waiting for their trace to settle

	SamplingDecisions      map[string]uint64 // reason -> count
	SamplingRates          []SamplingRate
	SamplingReloads        uint64
	SamplingReloadFailures uint64
	SamplingHeld           int

	// Inject is what --inject-context's socket programs did, by result
	// and reason; nil without --inject-context.
	Inject []InjectCount

	// KubernetesAPI is 1 while the API server answers, 0 while it does
	// not, -1 when golens does not use it.
	KubernetesAPI  int
	KubernetesPods int // pods of this node known, when KubernetesAPI ≥ 0

	// KernelFeatures is, per kernel feature golens uses, whether the
	// running kernel has it (probed once at start-up).
	KernelFeatures map[string]bool

	// Discovery is what process discovery did; nil when it is off.
	Discovery *DiscoveryStats
}

// DiscoveryStats count discovery's work.
type DiscoveryStats struct {
	Execs       uint64            // exec events received from the kernel
	EventLosses uint64            // times the kernel dropped process events
	Binaries    uint64            // executables read for Go build info
	Rescans     map[string]uint64 // scans of /proc, by reason
}

// InjectCount is one golens_inject_total series.
type InjectCount struct {
	Result string // injected or skipped
	Reason string
	N      uint64
}

// SamplingRate is the root sampling in force for a service/operation.
type SamplingRate struct {
	Service, Operation string
	Probability        float64
}

// RegisterSelf exposes golens_ health metrics read from fn at each scrape.
func (m *Metrics) RegisterSelf(fn func() SelfStats) {
	m.reg.MustRegister(&selfCollector{fn: fn})
}

type selfCollector struct{ fn func() SelfStats }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descHits     = desc("golens_probe_hits_total", "eBPF programs run in target processes; each is one probe hit paid by the target.")
	descRead     = desc("golens_events_read_total", "Events read from the kernel ring buffer.")
	descLost     = desc("golens_events_lost_total", "Events dropped in the kernel because the ring buffer was full.")
	descDecode   = desc("golens_events_decode_errors_total", "Events that could not be decoded or whose target was already released.")
	descOrphan   = desc("golens_orphan_returns_total", "Function returns seen without their entry (attached mid-call, or entry evicted).")
	descTargets  = desc("golens_targets", "Processes currently instrumented.")
	descAttached = desc("golens_probes_attached", "Targets each probe family is attached to.", "probe")
	descRefused  = desc("golens_probes_refused_total", "Refusals by reason: a probe family refused for a target (unsupported_go, no_offsets, no_function, attach_failed), or a whole target whose binary is malformed (bad_binary) or made inspection panic (inspect_panic).", "reason")
	descQueue    = desc("golens_export_queue_length", "Spans waiting for export.")
	descExported = desc("golens_spans_exported_total", "Spans accepted by the exporter.")
	descDropped  = desc("golens_spans_dropped_total", "Spans never exported, by reason: queue_full (the export queue was full), backpressure (healthy-path spans thinned while the queue was filling; critical ones never are), shutdown (not exported within --shutdown-timeout).", "reason")
	descYield    = desc("golens_cpu_yield", "With --cpu-yield: 1 while golens' threads run under SCHED_IDLE (a waking target preempts them at once), 0 while at normal priority because golens was behind (ring buffer filling or its own timers late); -1 without --cpu-yield.")
	descYieldChg = desc("golens_cpu_policy_changes_total", "With --cpu-yield: switches of golens' threads to a scheduling policy, idle or normal.", "policy")
	descPLevel   = desc("golens_export_pressure_level", "Backpressure level of the export queue: 0 normal; from half full, level k keeps healthy-path spans with probability 2^-k, and the highest level none, leaving the rest of the queue to critical spans.")
	descPEnter   = desc("golens_export_pressure_entered_total", "Times the export queue's backpressure level was entered, by level.", "level")
	descThinned  = desc("golens_spans_thinned_total", "Healthy-path spans dropped by backpressure, by the level that dropped them (their sum is golens_spans_dropped_total{reason=\"backpressure\"}).", "level")
	descFailed   = desc("golens_spans_failed_total", "Spans lost because the exporter returned an error.")
	descLinked   = desc("golens_spans_linked_total", "Server spans joined to their caller's trace by TCP connection on this node.")
	descUnlinked = desc("golens_spans_unlinked_total", "Server spans exported as their own trace though their caller may be a watched process on this node, by reason: no_client_span (the caller's client span was not found in time), lookup_busy (the socket owner lookup could not answer in time), ambiguous (more than one call on their connection, or more than one connection on the node, could have been theirs: not guessed), no_conn (the caller's call did not say which connection it used: never paired).", "reason")
	descLinkOver = desc("golens_link_overflow_total", "Traces released before their caller was found because the linker held too many spans.")
	descHeld     = desc("golens_spans_held", "Spans waiting for their trace to settle (linking, sampling window).")
	descDecision = desc("golens_sampling_decisions_total", "Sampling decisions by reason.", "reason")
	descRate     = desc("golens_sampling_probability", "Effective root sampling probability per service and operation (empty operation: the service default), after SLA scaling.", "service_name", "operation")
	descReloads  = desc("golens_sampling_reloads_total", "Sampling strategies files applied.")
	descInject   = desc("golens_inject_total", "What --inject-context did on the wire: result=injected (reason http1 or http2: a traceparent added to a request), or result=skipped with why the request or connection went out untouched (push_failed: the kernel refused the insertion; http1_no_announcement: an HTTP/1.x request line with nothing announced for its connection (not a *net.TCPConn, or the application set traceparent); http1_mismatch, http1_no_line: another request line than the announced one, or none at the start of the send; http1_unsent, h2_unsent: an announced request or stream that never went out as announced; h2_frame_split, h2_too_large, h2_malformed: an announced HTTP/2 header block that spans sends, would grow past 16384 bytes, or has bad padding; h2_too_many_frames, h2_bad_frame, h2_pull_failed, h2_preface_split, h2_resent: an HTTP/2 connection given up, every later byte untouched; send_buffer_full: the socket could not have queued the request's grown send whole (a full send buffer), so it went out as it was; no_state: the kernel had no storage for a connection's state; grpc_app_traceparent: a gRPC call whose application set traceparent metadata itself; grpc_no_call, grpc_not_tcp, grpc_unchecked: a gRPC client stream not announced because it belongs to no call golens saw start (a stream grpc-go opens for itself, such as a health check), its connection is not a plain TCP one (TLS), or it has more header fields than are checked for a traceparent).", "result", "reason")
	descK8sAPI   = desc("golens_kubernetes_api_reachable", "1 while the Kubernetes API server answers golens' pod watch, 0 while it does not (the known pods stay instrumented).")
	descK8sPods  = desc("golens_kubernetes_pods", "Pods bound to this node that golens knows from the API server.")
	descExecs    = desc("golens_discovery_execs_total", "Program executions (exec) the kernel reported to discovery.")
	descEvLost   = desc("golens_discovery_events_lost_total", "Times the kernel dropped process events because golens read them too slowly; each caused a rescan of /proc, so no process was missed.")
	descBinaries = desc("golens_discovery_binaries_read_total", "Executables read to tell whether they are Go programs (each binary file once, however many processes run it).")
	descRescans  = desc("golens_discovery_rescans_total", "Scans of /proc by reason: start, periodic (safety net), events_lost, events_failed.", "reason")
	descKernel   = desc("golens_kernel_feature", "1 when the running kernel has the feature golens uses, 0 when it lacks it or could not be probed (probed at start-up; see the start-up log for what each missing one disables).", "feature")
	descReloadKO = desc("golens_sampling_reload_failures_total", "Changed sampling strategies files rejected (the previous strategies stay).")
)

func (c *selfCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHits, descRead, descLost, descYield, descYieldChg, descDecode, descOrphan, descTargets, descAttached, descRefused, descQueue, descExported, descDropped, descPLevel, descPEnter, descThinned, descFailed, descLinked, descUnlinked, descLinkOver, descHeld, descDecision, descRate, descReloads, descReloadKO, descInject, descK8sAPI, descK8sPods, descExecs, descEvLost, descBinaries, descRescans, descKernel} {
		ch <- d
	}
}

func (c *selfCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.fn()
	counter := func(d *prometheus.Desc, v uint64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	gauge := func(d *prometheus.Desc, v int, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), lv...)
	}
	counter(descHits, s.ProbeHits)
	counter(descRead, s.EventsRead)
	counter(descLost, s.EventsLost)
	counter(descDecode, s.DecodeErrors)
	counter(descOrphan, s.OrphanReturns)
	gauge(descTargets, s.Targets)
	for p, n := range s.ProbesAttached {
		gauge(descAttached, n, p)
	}
	for r, n := range s.ProbesRefused {
		counter(descRefused, uint64(n), r)
	}
	gauge(descQueue, s.QueueLength)
	counter(descExported, s.SpansExported)
	counter(descDropped, s.SpansDropped, "queue_full")
	counter(descDropped, s.SpansUnexported, "shutdown")
	var thinned uint64
	for level := 1; level < len(s.SpansThinned); level++ {
		thinned += s.SpansThinned[level]
		counter(descThinned, s.SpansThinned[level], strconv.Itoa(level))
	}
	counter(descDropped, thinned, "backpressure")
	for level := 1; level < len(s.PressureEntered); level++ {
		counter(descPEnter, s.PressureEntered[level], strconv.Itoa(level))
	}
	gauge(descPLevel, s.PressureLevel)
	gauge(descYield, s.CPUYield)
	for _, p := range []string{"idle", "normal"} {
		if s.CPUYield >= 0 {
			counter(descYieldChg, s.CPUPolicyChanges[p], p)
		}
	}
	counter(descFailed, s.SpansFailed)
	counter(descLinked, s.SpansLinked)
	counter(descUnlinked, s.SpansUnlinked, "no_client_span")
	counter(descUnlinked, s.SpansLookupBusy, "lookup_busy")
	counter(descUnlinked, s.SpansAmbiguous, "ambiguous")
	counter(descUnlinked, s.SpansNoConn, "no_conn")
	counter(descLinkOver, s.LinkOverflow)
	gauge(descHeld, s.SpansHeld+s.SamplingHeld)
	for r, n := range s.SamplingDecisions {
		counter(descDecision, n, r)
	}
	for _, r := range s.SamplingRates {
		ch <- prometheus.MustNewConstMetric(descRate, prometheus.GaugeValue, r.Probability, r.Service, r.Operation)
	}
	counter(descReloads, s.SamplingReloads)
	counter(descReloadKO, s.SamplingReloadFailures)
	for _, c := range s.Inject {
		counter(descInject, c.N, c.Result, c.Reason)
	}
	for f, ok := range s.KernelFeatures {
		v := 0
		if ok {
			v = 1
		}
		gauge(descKernel, v, f)
	}
	if s.KubernetesAPI >= 0 {
		gauge(descK8sAPI, s.KubernetesAPI)
		gauge(descK8sPods, s.KubernetesPods)
	}
	if d := s.Discovery; d != nil {
		counter(descExecs, d.Execs)
		counter(descEvLost, d.EventLosses)
		counter(descBinaries, d.Binaries)
		for r, n := range d.Rescans {
			counter(descRescans, n, r)
		}
	}
}
