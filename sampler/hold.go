package sampler

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Defaults of HoldConfig.
const (
	DefaultHoldWindow = 2 * time.Second
	DefaultHoldMax    = 10_000
)

// HoldConfig tunes a Hold; zero values take the defaults.
type HoldConfig struct {
	// Window is how long a span waits for its trace to turn critical (2 s).
	Window time.Duration
	// Max bounds the spans held (10000); beyond it the oldest is released
	// with its own decision.
	Max int
	// Clock is the time source; nil is the system clock.
	Clock Clock
}

// Hold keeps finished spans that their own decision would drop for a short
// window, so that when a later span of the same trace turns out critical (a
// slow server span finishing after the downstream call it waited on) they
// are kept with it. Spans decided Keep need no wait and are released at once.
//
// Items come out through the release function given to NewHold, called
// from whichever method releases them (Add, MarkCritical, Flush, Drain, Run)
// without any lock held; it may call back into the Hold.
type Hold[T any] struct {
	cfg HoldConfig
	// callerTime: no Clock was configured, AddAt's time is used.
	callerTime bool
	release    func(T, Decision)

	mu      sync.Mutex
	queue   list.List                   // of *held[T], oldest first
	byTrace map[TraceID][]*list.Element // each trace's held spans, oldest first
	marked  map[TraceID]time.Time       // traces turned critical, until when
	stats   HoldStats
	// idle is set while Run waits for work rather than ticking; whoever
	// gives it work clears it and wakes Run through kick.
	idle bool
	kick chan struct{}
}

type held[T any] struct {
	id    TraceID
	item  T
	d     Decision
	until time.Time
}

// HoldStats counts what a Hold did.
type HoldStats struct {
	// Held is how many spans wait now.
	Held int
	// Promoted counts spans released as kept because their trace turned
	// critical; Expired those released with their own decision at the end of
	// the window; Overflow those released early, with their own decision,
	// because Max spans were held.
	Promoted, Expired, Overflow uint64
}

// NewHold returns a Hold that hands every item it lets go, with its final
// decision, to release.
func NewHold[T any](cfg HoldConfig, release func(item T, d Decision)) *Hold[T] {
	setDefault(&cfg.Window, DefaultHoldWindow)
	setDefault(&cfg.Max, DefaultHoldMax)
	callerTime := cfg.Clock == nil
	if callerTime {
		cfg.Clock = systemClock{}
	}
	return &Hold[T]{
		cfg:        cfg,
		callerTime: callerTime,
		release:    release,
		byTrace:    make(map[TraceID][]*list.Element),
		marked:     make(map[TraceID]time.Time),
		kick:       make(chan struct{}, 1),
	}
}

// wake tells an idle Run there is work again; h.mu is held.
func (h *Hold[T]) wake() {
	if h.idle {
		h.idle = false
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
}

// released is an item on its way out.
type released[T any] struct {
	item T
	d    Decision
}

// promoted is the decision of a span kept because its trace is critical.
func promoted() Decision {
	return Decision{Keep: true, Reason: ReasonCriticalTrace}
}

// Add hands a finished span and its decision to the Hold. A kept span is
// released at once, and if it is critical its trace's held spans with it; a
// span of a trace marked critical within the window is released as kept; any
// other waits for the window.
func (h *Hold[T]) Add(id TraceID, item T, d Decision) { h.AddAt(time.Time{}, id, item, d) }

// AddAt is Add at now, a clock reading the caller made anyway (zero: the
// Hold reads its clock).
func (h *Hold[T]) AddAt(now time.Time, id TraceID, item T, d Decision) {
	now = readAt(h.cfg.Clock, h.callerTime, now)
	// Room for the one span nearly every call releases, on the stack.
	var buf [1]released[T]
	out := buf[:0]
	h.mu.Lock()
	switch {
	case d.Keep:
		if d.Reason.Critical() {
			out = h.mark(now, id, out)
		}
		out = append(out, released[T]{item, d})
	case h.isMarked(now, id):
		h.stats.Promoted++
		out = append(out, released[T]{item, promoted()})
	default:
		e := h.queue.PushBack(&held[T]{id: id, item: item, d: d, until: now.Add(h.cfg.Window)})
		h.byTrace[id] = append(h.byTrace[id], e)
		h.wake()
		for h.queue.Len() > h.cfg.Max {
			out = append(out, h.pop())
			h.stats.Overflow++
		}
	}
	h.mu.Unlock()
	h.emit(out)
}

// MarkCritical releases the held spans of a trace as kept, and keeps the
// trace's spans added during the next window too.
func (h *Hold[T]) MarkCritical(id TraceID) {
	now := h.cfg.Clock.Now()
	h.mu.Lock()
	out := h.mark(now, id, nil)
	h.mu.Unlock()
	h.emit(out)
}

// Flush releases, with their own decision, the spans whose window is over.
func (h *Hold[T]) Flush() {
	now := h.cfg.Clock.Now()
	var out []released[T]
	h.mu.Lock()
	for e := h.queue.Front(); e != nil && !now.Before(e.Value.(*held[T]).until); e = h.queue.Front() {
		out = append(out, h.pop())
		h.stats.Expired++
	}
	for id, until := range h.marked {
		if !now.Before(until) {
			delete(h.marked, id)
		}
	}
	h.mu.Unlock()
	h.emit(out)
}

// Drain releases every held span with its own decision, as at shutdown.
func (h *Hold[T]) Drain() {
	var out []released[T]
	h.mu.Lock()
	for h.queue.Len() > 0 {
		out = append(out, h.pop())
		h.stats.Expired++
	}
	clear(h.marked)
	h.mu.Unlock()
	h.emit(out)
}

// Run flushes expired spans a few times per window until ctx is done, then
// drains the rest. While nothing is held it waits without waking.
func (h *Hold[T]) Run(ctx context.Context) error {
	period := max(h.cfg.Window/4, 10*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.Drain()
			return nil
		case <-t.C:
			h.Flush()
		}
		if h.goIdle() {
			t.Stop()
			select {
			case <-ctx.Done():
				h.Drain()
				return nil
			case <-h.kick:
			}
			t.Reset(period)
		}
	}
}

// goIdle tells whether nothing is held or marked, and if so marks the Hold
// idle, so the next Add or mark wakes Run.
func (h *Hold[T]) goIdle() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.idle = h.queue.Len() == 0 && len(h.marked) == 0
	return h.idle
}

// Stats returns the Hold's counters.
func (h *Hold[T]) Stats() HoldStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.stats
	st.Held = h.queue.Len()
	return st
}

// mark records id as critical and appends its held spans, promoted; h.mu is
// held.
func (h *Hold[T]) mark(now time.Time, id TraceID, out []released[T]) []released[T] {
	if _, ok := h.marked[id]; ok || len(h.marked) < h.cfg.Max {
		h.marked[id] = now.Add(h.cfg.Window)
		h.wake()
	}
	for _, e := range h.byTrace[id] {
		out = append(out, released[T]{h.queue.Remove(e).(*held[T]).item, promoted()})
		h.stats.Promoted++
	}
	delete(h.byTrace, id)
	return out
}

func (h *Hold[T]) isMarked(now time.Time, id TraceID) bool {
	until, ok := h.marked[id]
	return ok && now.Before(until)
}

// pop removes the oldest held span; h.mu is held.
func (h *Hold[T]) pop() released[T] {
	x := h.queue.Remove(h.queue.Front()).(*held[T])
	if rest := h.byTrace[x.id][1:]; len(rest) > 0 {
		h.byTrace[x.id] = rest
	} else {
		delete(h.byTrace, x.id)
	}
	return released[T]{x.item, x.d}
}

func (h *Hold[T]) emit(out []released[T]) {
	for _, r := range out {
		h.release(r.item, r.d)
	}
}
