package tracer

import (
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"

	"github.com/golens/golens/sampler"
	"github.com/golens/golens/span"
)

// backpressure grades the export queue's fill and thins healthy-path spans
// as it rises (sampler.Pressure): critical spans (errors, latency
// outliers, the rest of their traces) are never thinned, so they are the
// last to be dropped, when the queue is full.
type backpressure struct {
	p *sampler.Pressure
	// thinned counts spans dropped at each level; entered the times each
	// level was entered.
	thinned, entered []atomic.Uint64

	// An episode runs from leaving level 0 to coming back: each level is
	// logged the first time it is reached in an episode, and the end once.
	mu           sync.Mutex
	logged       uint64 // bit k: level k logged this episode
	episodeStart uint64 // thinned total when the episode began
	log          func(level, before int, factor float64, thinned uint64)
}

func newBackpressure(log func(level, before int, factor float64, thinned uint64)) *backpressure {
	b := &backpressure{log: log}
	b.p = sampler.NewPressure(sampler.PressureConfig{OnChange: b.changed})
	n := b.p.Levels() + 1
	b.thinned, b.entered = make([]atomic.Uint64, n), make([]atomic.Uint64, n)
	return b
}

// changed runs under the Pressure's lock, so changes come in order.
func (b *backpressure) changed(level, before int) {
	for k := before + 1; k <= level; k++ {
		b.entered[k].Add(1)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	total := b.thinnedTotal()
	if before == 0 {
		b.logged, b.episodeStart = 0, total
	}
	switch {
	case level == 0:
		b.log(0, before, 1, total-b.episodeStart)
	case level > before && b.logged&(1<<level) == 0:
		b.logged |= 1 << level
		b.log(level, before, b.p.Factor(level), total-b.episodeStart)
	}
}

func (b *backpressure) thinnedTotal() uint64 {
	var n uint64
	for i := range b.thinned {
		n += b.thinned[i].Load()
	}
	return n
}

// update sets the level for the queue's fill.
func (b *backpressure) update(queued, capacity int) int {
	level, _ := b.p.Update(queued, capacity)
	return level
}

// admit says whether a span goes on to the export queue at the current
// fill, raising the th a healthy span records when it is thinned.
func (b *backpressure) admit(st *span.Span, critical bool, queued, capacity int) bool {
	level := b.update(queued, capacity)
	if critical || level == 0 {
		return true
	}
	var ts trace.TraceState
	if st.TraceState != "" {
		// Written by the sampler, so well-formed; parsed only here, for
		// a span under pressure.
		ts, _ = trace.ParseTraceState(st.TraceState)
	}
	base, known := otThreshold(ts)
	keep, th, record := sampler.Thin(sampler.TraceID(st.TraceID), base, known, b.p.Factor(level))
	if !keep {
		b.thinned[level].Add(1)
		return false
	}
	if record && th != base {
		st.TraceState = withThreshold(ts, th).String()
	}
	return true
}

// otThreshold returns the th of a tracestate's ot member, if it has one.
func otThreshold(ts trace.TraceState) (sampler.Threshold, bool) {
	for _, kv := range strings.Split(ts.Get("ot"), ";") {
		if v, ok := strings.CutPrefix(kv, "th:"); ok {
			t, err := sampler.ParseThreshold(v)
			return t, err == nil
		}
	}
	return 0, false
}

// withThreshold returns ts with its ot member's th set to t, the member's
// other sub-keys kept.
func withThreshold(ts trace.TraceState, t sampler.Threshold) trace.TraceState {
	parts := []string{"th:" + t.String()}
	if old := ts.Get("ot"); old != "" {
		for _, kv := range strings.Split(old, ";") {
			if !strings.HasPrefix(kv, "th:") {
				parts = append(parts, kv)
			}
		}
	}
	out, err := ts.Insert("ot", strings.Join(parts, ";"))
	if err != nil {
		return ts
	}
	return out
}
