package tracer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/golens/golens/buildinfo"
	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/sampler"
	"github.com/golens/golens/span"
)

// Options tune the export queue.
type Options struct {
	QueueSize     int           // spans waiting for export; beyond it they are dropped and counted
	BatchSize     int           // spans per export call
	FlushInterval time.Duration // longest a span waits for its batch
	ExportTimeout time.Duration // per export call (--otlp-timeout), honoured as given
	Log           *slog.Logger
	// Linker, when set, joins traces of services on this node (see Linker).
	Linker *Linker
	// Sampler, when set, decides which spans are exported; without one
	// every span is.
	Sampler *sampler.Sampler
}

func (o *Options) defaults() {
	if o.QueueSize <= 0 {
		o.QueueSize = 8192
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 512
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.ExportTimeout <= 0 {
		o.ExportTimeout = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Stats are the tracer's counters, for golens_ metrics.
type Stats struct {
	Queued   int    // spans waiting now
	Exported uint64 // spans the exporter accepted
	Dropped  uint64 // queue full: never exported
	Failed   uint64 // the exporter returned an error for them
	// Unexported are spans Shutdown ran out of time for: queued, or in a
	// batch the exporter was still sending (aborted).
	Unexported uint64
	Linked     uint64 // server spans joined to a caller's trace on this node
	// Unlinked are server spans whose caller was a watched process on this
	// node but whose client span was not found in time (exported as
	// their own trace); LookupBusy are server spans exported unlinked
	// because their peer's owner could not be looked up in time; Overflow
	// are traces released early because the linker held too many spans;
	// Ambiguous are server spans exported unlinked because more than one
	// call of their caller could have been theirs; NoConn are server
	// spans exported unlinked because their caller's call did not say
	// which connection it used.
	Unlinked, LookupBusy, Overflow, Ambiguous, NoConn uint64
	Held                                              int // spans waiting for their trace to settle
	// SamplingHeld are spans in the sampler's critical-path window.
	SamplingHeld int
	// PressureLevel is the export queue's pressure level now (0: normal;
	// see sampler.PressureConfig); Thinned counts the healthy-path spans
	// dropped at each level (index), PressureEntered the times each level
	// was entered.
	PressureLevel            int
	Thinned, PressureEntered []uint64
}

// Tracer builds spans from events and exports them in batches. Recording
// never blocks the event reader: a full queue drops the span and counts it.
type Tracer struct {
	exp  Exporter
	opts Options
	host string

	queue *spanQueue
	done  chan struct{}

	mu        sync.Mutex
	resources map[*event.Process]*span.Resource
	pauses    *pauseLog

	linkMu      sync.Mutex    // guards opts.Linker and linkIdle
	linkIdle    bool          // the flusher waits for linkKick rather than ticking
	linkKick    chan struct{} // wakes an idle flusher
	stop        chan struct{}
	flusherDone chan struct{}
	lookupDone  chan struct{}

	sampling   *sampling
	bp         *backpressure
	holdCancel context.CancelFunc
	holdDone   chan struct{}

	exported, dropped, failed atomic.Uint64
	lastErrLog                atomic.Int64 // unix seconds of the last logged export error
	closeOnce                 sync.Once
	// abandoned is set when Shutdown's time ran out: from then on, what
	// the export loop holds is counted as unexported, not sent.
	abandoned  atomic.Bool
	unexported atomic.Uint64
}

// New starts a tracer exporting through exp.
func New(exp Exporter, opts Options) *Tracer {
	opts.defaults()
	host, _ := os.Hostname()
	t := &Tracer{
		exp:         exp,
		opts:        opts,
		host:        host,
		queue:       newSpanQueue(opts.QueueSize, opts.BatchSize),
		done:        make(chan struct{}),
		stop:        make(chan struct{}),
		flusherDone: make(chan struct{}),
		lookupDone:  make(chan struct{}),
		linkKick:    make(chan struct{}, 1),
		resources:   make(map[*event.Process]*span.Resource),
		pauses:      newPauseLog(),
		holdDone:    make(chan struct{}),
	}
	t.bp = newBackpressure(t.logPressure)
	if opts.Sampler != nil {
		t.sampling = newSampling(opts.Sampler, t.admit)
		ctx, cancel := context.WithCancel(context.Background())
		t.holdCancel = cancel
		go func() {
			defer close(t.holdDone)
			t.sampling.run(ctx)
		}()
	} else {
		close(t.holdDone)
	}
	go t.run()
	if opts.Linker != nil {
		go t.flushLinker()
		go t.lookupOwners()
	} else {
		close(t.flusherDone)
		close(t.lookupDone)
	}
	return t
}

// lookupOwners answers the linker's socket-owner lookups, in batches,
// off the event reader: a lookup reads every open file of the watched
// processes, which takes long with thousands of sockets.
func (t *Tracer) lookupOwners() {
	defer close(t.lookupDone)
	l := t.opts.Linker
	for {
		select {
		case <-t.stop:
			return
		case q := <-l.Lookups():
			t.answer(queued(l, []Lookup{q}))
		}
	}
}

// queued appends to batch the lookups waiting in l's queue, up to
// LookupQueue: every peer queued meanwhile goes in the same lookup.
func queued(l *Linker, batch []Lookup) []Lookup {
	for len(batch) < LookupQueue {
		select {
		case p := <-l.Lookups():
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// answer looks up the owners of batch and hands the answers to the linker.
func (t *Tracer) answer(batch []Lookup) {
	l := t.opts.Linker
	callers := l.Owner(batch)
	var out []*span.Span
	t.linkMu.Lock()
	now := time.Now()
	for i, p := range batch {
		out = append(out, l.Resolve(p, callers[i], now)...)
	}
	t.linkMu.Unlock()
	t.enqueueAll(now, out)
}

// linkFlushEvery is how often the linker's held spans are looked at while
// it holds any.
const linkFlushEvery = 100 * time.Millisecond

// flushLinker releases held spans whose wait is over. While the linker is
// empty it waits for the next span rather than ticking.
func (t *Tracer) flushLinker() {
	defer close(t.flusherDone)
	tick := time.NewTicker(linkFlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case now := <-tick.C:
			t.linkMu.Lock()
			out := t.opts.Linker.Flush(now, false)
			t.linkIdle = t.opts.Linker.Empty()
			idle := t.linkIdle
			t.linkMu.Unlock()
			t.enqueueAll(now, out)
			if !idle {
				continue
			}
			tick.Stop()
			select {
			case <-t.stop:
				return
			case <-t.linkKick:
			}
			tick.Reset(linkFlushEvery)
		}
	}
}

// enqueueAll hands spans ready for export to the sampler, or straight to
// the export queue without one; now is the caller's clock reading (zero:
// none).
func (t *Tracer) enqueueAll(now time.Time, stubs []*span.Span) {
	if len(stubs) == 0 {
		return
	}
	if t.sampling != nil {
		t.sampling.decide(now, stubs)
		return
	}
	for _, s := range stubs {
		t.admit(s, s.Status == span.Error)
	}
}

// admit queues a span for export unless the queue's pressure thins it:
// healthy-path spans are thinned as the queue fills, critical ones are
// queued while there is room.
func (t *Tracer) admit(st *span.Span, critical bool) {
	if t.bp.admit(st, critical, t.queue.len(), t.queue.max) {
		t.enqueue(st)
	}
}

// logPressure says once per episode of pressure that a level was reached,
// and once that it is over.
func (t *Tracer) logPressure(level, before int, factor float64, thinned uint64) {
	if level == 0 {
		t.opts.Log.Info("export queue pressure over: spans are exported as sampled again",
			"from_pressure_level", before, "thinned", thinned)
		return
	}
	t.opts.Log.Warn("export queue under pressure: healthy-path spans thinned, critical ones kept; counted in golens_spans_dropped_total{reason=\"backpressure\"}",
		"pressure_level", level, "keep", factor, "queue_size", t.queue.max, "thinned", thinned)
}

// Record builds the span for ev, if it yields one, and queues it.
func (t *Tracer) Record(ev event.Event) { t.RecordAt(ev, time.Now()) }

// RecordAt is Record for an event handed over at now: a caller that reads
// the clock for something else per event passes its reading on.
func (t *Tracer) RecordAt(ev event.Event, now time.Time) {
	if st, ok := ev.(event.Stopper); ok {
		if start, end, gc := st.GCStop(); gc {
			t.mu.Lock()
			t.pauses.add(ev.Target().PID, start, end)
			t.mu.Unlock()
		}
		return
	}
	sp, ok := ev.(event.Spanner)
	if !ok {
		return
	}
	st := new(span.Span)
	*st = sp.Span()
	// A span the GC stopped says for how long: a GC-made outlier explains
	// itself in the trace.
	t.mu.Lock()
	paused, n := t.pauses.overlap(ev.Target().PID, st.Start, st.End)
	t.mu.Unlock()
	if n > 0 {
		st.Attrs = append(st.Attrs,
			attribute.Float64("go.gc.pause_duration", paused.Seconds()),
			attribute.Int("go.gc.pause_count", n))
	}
	st.Resource = t.resource(ev.Target())
	st.Scope = Scope
	if t.opts.Sampler != nil {
		// The service's health, from every request, sampled or not.
		if sv, ok := ev.(event.Served); ok {
			if d, failed, ok := sv.Served(); ok {
				t.opts.Sampler.ObserveAt(now, ev.Target().ServiceName, d, failed)
			}
		}
	}
	if t.opts.Linker == nil {
		t.enqueueAll(now, []*span.Span{st})
		return
	}
	t.linkMu.Lock()
	out := t.opts.Linker.Add(ev, st, now)
	if t.linkIdle && !t.opts.Linker.Empty() {
		t.linkIdle = false
		select {
		case t.linkKick <- struct{}{}:
		default:
		}
	}
	t.linkMu.Unlock()
	t.enqueueAll(now, out)
}

func (t *Tracer) enqueue(s *span.Span) {
	if !t.queue.push(s) {
		t.dropped.Add(1)
	}
}

// Forget drops what the tracer keeps for a process that went away.
func (t *Tracer) Forget(pid int) {
	t.mu.Lock()
	for p := range t.resources {
		if p.PID == pid {
			delete(t.resources, p)
		}
	}
	t.pauses.forget(pid)
	t.mu.Unlock()
}

func (t *Tracer) resource(p *event.Process) *span.Resource {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.resources[p]; ok {
		return r
	}
	r := ProcessResource(p, t.host)
	t.resources[p] = r
	return r
}

// ProcessResource describes an instrumented process as the resource of
// its spans.
func ProcessResource(p *event.Process, host string) *span.Resource {
	attrs := []attribute.KeyValue{
		attribute.String("service.name", p.ServiceName),
		attribute.Int("process.pid", p.PID),
		attribute.String("process.executable.name", p.ExeName),
		attribute.String("process.runtime.name", "go"),
		attribute.String("process.runtime.version", p.GoVersion),
		attribute.String("telemetry.distro.name", "golens"),
		attribute.String("telemetry.distro.version", buildinfo.Version),
	}
	if p.ExePath != "" {
		attrs = append(attrs, attribute.String("process.executable.path", p.ExePath))
	}
	if host != "" {
		attrs = append(attrs, attribute.String("host.name", host))
	}
	for _, k := range slices.Sorted(maps.Keys(p.Resource)) {
		attrs = append(attrs, attribute.String(k, p.Resource[k]))
	}
	return span.NewResource("", attrs...)
}

func (t *Tracer) run() {
	defer close(t.done)
	// A batch goes out when full or FlushInterval after its first span;
	// with nothing to send, nothing wakes.
	batch := make([]*span.Span, 0, t.opts.BatchSize)
	for {
		var ok bool
		batch, ok = t.queue.take(batch[:0], t.opts.FlushInterval)
		t.export(batch)
		clear(batch) // the spans are the GC's once sent
		if !ok {
			return
		}
		// The queue drained meanwhile, or not: the level follows even
		// while no span arrives.
		t.bp.update(t.queue.len(), t.queue.max)
	}
}

func (t *Tracer) export(batch []*span.Span) {
	if len(batch) == 0 {
		return
	}
	if t.abandoned.Load() {
		t.unexported.Add(uint64(len(batch)))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.opts.ExportTimeout)
	defer cancel()
	if err := t.exp.ExportSpans(ctx, batch); err != nil {
		if t.abandoned.Load() {
			// Shutdown aborted this export: lost to the shutdown, not
			// refused by the collector.
			t.unexported.Add(uint64(len(batch)))
			return
		}
		lost := uint64(len(batch))
		// A partial success: only the rejected spans are lost.
		var rej *RejectedError
		if errors.As(err, &rej) && rej.Rejected >= 0 && rej.Rejected < int64(len(batch)) {
			lost = uint64(rej.Rejected)
			t.exported.Add(uint64(len(batch)) - lost)
		}
		t.failed.Add(lost)
		// One line per 10 s at most: a collector outage must not flood logs.
		now := time.Now().Unix()
		if last := t.lastErrLog.Load(); now-last >= 10 && t.lastErrLog.CompareAndSwap(last, now) {
			t.opts.Log.Error("export spans failed; dropped and counted in golens_spans_failed_total", "spans", lost, "err", err)
		}
		return
	}
	t.exported.Add(uint64(len(batch)))
}

// Stats returns the current counters.
func (t *Tracer) Stats() Stats {
	s := Stats{
		Queued:   t.queue.len(),
		Exported: t.exported.Load(),
		Dropped:  t.dropped.Load(),
		Failed:   t.failed.Load(),
		// Spans still queued are not counted: Shutdown counts them once
		// it gives up on them.
		Unexported: t.unexported.Load(),
	}
	if l := t.opts.Linker; l != nil {
		t.linkMu.Lock()
		s.Linked, s.Held, s.Unlinked, s.LookupBusy, s.Overflow, s.Ambiguous, s.NoConn = l.Linked, l.held, l.Unmatched, l.LookupBusy, l.Overflow, l.Ambiguous, l.NoConn
		t.linkMu.Unlock()
	}
	if t.sampling != nil {
		s.SamplingHeld = t.sampling.hold.Stats().Held
	}
	s.PressureLevel = t.bp.p.Level()
	s.Thinned, s.PressureEntered = make([]uint64, len(t.bp.thinned)), make([]uint64, len(t.bp.entered))
	for i := range t.bp.thinned {
		s.Thinned[i], s.PressureEntered[i] = t.bp.thinned[i].Load(), t.bp.entered[i].Load()
	}
	return s
}

// ShutdownError says how many spans Shutdown could not export in time.
type ShutdownError struct {
	Unexported uint64 // spans queued or being sent when time ran out
	Err        error
}

func (e *ShutdownError) Error() string {
	return fmt.Sprintf("%d spans not exported at shutdown: %v", e.Unexported, e.Err)
}

func (e *ShutdownError) Unwrap() error { return e.Err }

// Shutdown exports what is queued and closes the exporter, within ctx. When
// ctx ends first, the export in flight is aborted and every span not
// exported (in that batch or still queued) is counted in Stats.Unexported
// and reported in a *ShutdownError.
func (t *Tracer) Shutdown(ctx context.Context) error {
	t.closeOnce.Do(func() {
		close(t.stop)
		<-t.flusherDone
		<-t.lookupDone
		if l := t.opts.Linker; l != nil {
			// The lookups still queued are answered before the flush:
			// their roots would go out unlinked, though their callers'
			// calls may be here already. A slow node, whose agent reads
			// the last calls' events only as it is stopped, lost those
			// links so (the arm64 guest's gRPC calls under emulation).
			for batch := queued(l, nil); len(batch) > 0; batch = queued(l, nil) {
				t.answer(batch)
			}
			t.linkMu.Lock()
			now := time.Now()
			out := l.Flush(now, true)
			t.linkMu.Unlock()
			t.enqueueAll(now, out)
		}
		if t.holdCancel != nil {
			t.holdCancel()
			<-t.holdDone
			t.sampling.hold.Drain()
		}
		t.queue.close()
	})
	select {
	case <-t.done:
		return t.exp.Shutdown(ctx)
	case <-ctx.Done():
	}
	// Out of time. Closing the exporter with ctx done aborts the export
	// in flight; the loop then counts that batch and the rest of the
	// queue without sending, so its end is near.
	t.abandoned.Store(true)
	err := t.exp.Shutdown(ctx)
	<-t.done
	return &ShutdownError{Unexported: t.unexported.Load(), Err: errors.Join(ctx.Err(), err)}
}
