package tracer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/golens/golens/sampler"
	"github.com/golens/golens/span"
)

// gated is a collector that holds every export until its gate opens.
type gated struct {
	gate    chan struct{}
	started chan struct{}
	mu      sync.Mutex
	spans   []*span.Span
}

func (g *gated) ExportSpans(ctx context.Context, spans []*span.Span) error {
	select {
	case g.started <- struct{}{}:
	default:
	}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.mu.Lock()
	g.spans = append(g.spans, spans...)
	g.mu.Unlock()
	return nil
}
func (g *gated) Shutdown(context.Context) error { return nil }

func (g *gated) exported() []*span.Span {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*span.Span(nil), g.spans...)
}

// syncLog is a log buffer for slog written from the tracer's goroutines.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// With the collector stuck, healthy-path spans (kept at p=0.5) are thinned
// level by level as the queue fills and shed at the top level, their th
// raised to the probability they were kept at; critical spans still get
// the rest of the queue and are dropped only once it is full; every span
// is exported or counted; each level is logged once; once the collector
// answers the queue drains and the level falls back to 0.
func TestBackpressureLevels(t *testing.T) {
	exp := &gated{gate: make(chan struct{}), started: make(chan struct{}, 1)}
	var logs syncLog
	const queue = 100
	tr := New(exp, Options{QueueSize: queue, BatchSize: 1, FlushInterval: time.Hour, ExportTimeout: time.Hour,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	rng := rand.New(rand.NewPCG(17, 17))
	half := sampler.ThresholdFor(0.5).TraceState()
	produced, critical := 0, 0
	send := func(failed bool) {
		var tid span.TraceID
		for {
			binary.BigEndian.PutUint64(tid[:8], rng.Uint64())
			binary.BigEndian.PutUint64(tid[8:], rng.Uint64())
			if sampler.ThresholdFor(0.5).Keep(sampler.TraceID(tid)) {
				break // a trace the sampler kept at 0.5
			}
		}
		st := &span.Span{Name: "healthy", TraceID: tid, SpanID: span.SpanID{1}, Flags: span.FlagSampled, TraceState: half}
		if failed {
			st.Name, st.Status = "critical", span.Error
			critical++
		}
		produced++
		tr.enqueueAll(time.Time{}, []*span.Span{st})
	}
	send(false)
	<-exp.started // the first span is stuck at the collector
	for range 3000 {
		send(false)
	}
	st := tr.Stats()
	if st.PressureLevel != 5 {
		t.Fatalf("level %d with the queue at %d of %d, want 5", st.PressureLevel, st.Queued, queue)
	}
	var thinned uint64
	for level, n := range st.Thinned {
		thinned += n
		if level > 0 && n == 0 {
			t.Errorf("level %d thinned nothing", level)
		}
		if st.PressureEntered[level] != map[bool]uint64{true: 0, false: 1}[level == 0] {
			t.Errorf("level %d entered %d times, want once", level, st.PressureEntered[level])
		}
	}
	// The top level sheds every healthy span: the queue stops at 90 %.
	if st.Queued < 80 || st.Queued > 90 || st.Dropped != 0 {
		t.Errorf("queued %d, dropped %d for a full queue; want 80..90 queued, none dropped", st.Queued, st.Dropped)
	}
	if got := uint64(st.Queued) + 1 + thinned; got != uint64(produced) {
		t.Errorf("queued %d + 1 at the collector + thinned %d = %d, want the %d produced", st.Queued, thinned, got, produced)
	}

	// Critical spans fill the rest of the queue, then drop as queue_full.
	room := queue - st.Queued
	for range room + 7 {
		send(true)
	}
	st = tr.Stats()
	if st.Queued != queue || st.Dropped != 7 {
		t.Errorf("after %d critical spans: queued %d, dropped %d; want the full %d and 7 dropped", room+7, st.Queued, st.Dropped, queue)
	}

	// The collector answers: the queue drains, the level returns to 0,
	// and healthy spans are exported as sampled again.
	close(exp.gate)
	deadline := time.Now().Add(5 * time.Second)
	for tr.Stats().Queued > 0 || tr.Stats().PressureLevel != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not drained: %+v", tr.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 20 {
		send(false)
		time.Sleep(time.Millisecond)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	st = tr.Stats()
	thinned = 0
	for _, n := range st.Thinned {
		thinned += n
	}
	if got := st.Exported + st.Dropped + thinned; got != uint64(produced) {
		t.Errorf("exported %d + dropped %d + thinned %d = %d, want the %d produced", st.Exported, st.Dropped, thinned, got, produced)
	}

	// What arrived: every critical span the queue had room for, and the
	// healthy ones with the th they were kept at (0.5, halved per level).
	ths := map[string]bool{}
	for k := range 5 {
		ths["th:"+sampler.ThresholdFor(math.Ldexp(0.5, -k)).String()] = true
	}
	gotCritical, healthyAt := 0, map[string]int{}
	for _, s := range exp.exported() {
		ts, err := trace.ParseTraceState(s.TraceState)
		if err != nil {
			t.Fatalf("span %s exported with tracestate %q: %v", s.TraceID, s.TraceState, err)
		}
		ot := ts.Get("ot")
		if s.Name == "critical" {
			gotCritical++
			continue
		}
		if !ths[ot] {
			t.Errorf("healthy span exported with ot=%q, want one of %v", ot, ths)
		}
		th, _ := sampler.ParseThreshold(strings.TrimPrefix(ot, "th:"))
		if !th.Keep(sampler.TraceID(s.TraceID)) {
			t.Errorf("span %s exported with %s, which its trace id does not pass", s.TraceID, ot)
		}
		healthyAt[ot]++
	}
	if gotCritical != critical-7 {
		t.Errorf("%d critical spans exported, want %d (all but the 7 beyond a full queue)", gotCritical, critical-7)
	}
	if len(healthyAt) != 5 {
		t.Errorf("healthy spans exported at %v, want some at each of levels 0..4", healthyAt)
	}

	// One line per level reached, one when it was over.
	text := logs.String()
	for level := 1; level <= 5; level++ {
		if n := strings.Count(text, fmt.Sprintf("under pressure: healthy-path spans thinned, critical ones kept; counted in golens_spans_dropped_total{reason=\\\"backpressure\\\"}\" pressure_level=%d ", level)); n != 1 {
			t.Errorf("level %d logged %d times, want once:\n%s", level, n, text)
		}
	}
	if n := strings.Count(text, "pressure over"); n != 1 {
		t.Errorf("end of pressure logged %d times, want once:\n%s", n, text)
	}
}
