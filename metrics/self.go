package metrics

import "github.com/prometheus/client_golang/prometheus"

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
	SpansDropped   uint64
	SpansFailed    uint64
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
	descRefused  = desc("golens_probes_refused_total", "Probe families refused for a target, by reason.", "reason")
	descQueue    = desc("golens_export_queue_length", "Spans waiting for export.")
	descExported = desc("golens_spans_exported_total", "Spans accepted by the exporter.")
	descDropped  = desc("golens_spans_dropped_total", "Spans dropped because the export queue was full.")
	descFailed   = desc("golens_spans_failed_total", "Spans lost because the exporter returned an error.")
)

func (c *selfCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHits, descRead, descLost, descDecode, descOrphan, descTargets, descAttached, descRefused, descQueue, descExported, descDropped, descFailed} {
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
	counter(descDropped, s.SpansDropped)
	counter(descFailed, s.SpansFailed)
}
