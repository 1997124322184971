package sampler

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"
)

// releases records what a Hold lets go.
type releases struct {
	mu  sync.Mutex
	got []string
}

func (r *releases) release(item string, d Decision) {
	r.mu.Lock()
	defer r.mu.Unlock()
	verdict := "drop"
	if d.Keep {
		verdict = "keep"
	}
	r.got = append(r.got, item+":"+verdict+":"+string(d.Reason))
}

// take returns and forgets what was released so far.
func (r *releases) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

var (
	dropProb = Decision{Reason: ReasonDroppedProbabilistic}
	dropPar  = Decision{Reason: ReasonParentNotSampled}
	keepProb = Decision{Keep: true, Reason: ReasonProbabilistic}
	slow     = Decision{Keep: true, Reason: ReasonCriticalLatency}
)

func TestHold(t *testing.T) {
	a, b := TraceID{0xa}, TraceID{0xb}
	type step struct {
		advance  time.Duration
		do       func(h *Hold[string])
		released []string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"kept spans pass at once, dropped ones wait the window", []step{
			{0, func(h *Hold[string]) { h.Add(a, "a1", keepProb) }, []string{"a1:keep:probabilistic"}},
			{0, func(h *Hold[string]) { h.Add(a, "a2", dropProb) }, nil},
			{time.Second, func(h *Hold[string]) { h.Add(b, "b1", dropPar); h.Flush() }, nil},
			{time.Second, (*Hold[string]).Flush, []string{"a2:drop:dropped_probabilistic"}},
			{time.Second, (*Hold[string]).Flush, []string{"b1:drop:parent_not_sampled"}},
		}},
		{"MarkCritical releases the trace's held spans as kept", []step{
			{0, func(h *Hold[string]) { h.Add(a, "a1", dropProb); h.Add(b, "b1", dropProb); h.Add(a, "a2", dropPar) }, nil},
			{time.Second, func(h *Hold[string]) { h.MarkCritical(a) }, []string{"a1:keep:critical_trace", "a2:keep:critical_trace"}},
			// a span of the trace added within the window after the mark
			{time.Second / 2, func(h *Hold[string]) { h.Add(a, "a3", dropPar) }, []string{"a3:keep:critical_trace"}},
			{time.Second, (*Hold[string]).Flush, []string{"b1:drop:dropped_probabilistic"}},
			// the mark lasts one window
			{time.Second, func(h *Hold[string]) { h.Flush(); h.Add(a, "a4", dropPar) }, nil},
		}},
		{"a critical decision marks its trace", []step{
			{0, func(h *Hold[string]) { h.Add(a, "client", dropPar); h.Add(b, "other", dropPar) }, nil},
			{time.Second, func(h *Hold[string]) { h.Add(a, "server", slow) }, []string{"client:keep:critical_trace", "server:keep:critical_latency"}},
			{time.Second, (*Hold[string]).Flush, []string{"other:drop:parent_not_sampled"}},
		}},
		{"overflow releases the oldest with its own decision", []step{
			{0, func(h *Hold[string]) {
				for _, s := range []string{"1", "2", "3", "4", "5"} {
					h.Add(a, s, dropProb)
				}
			}, []string{"1:drop:dropped_probabilistic", "2:drop:dropped_probabilistic"}},
			{0, func(h *Hold[string]) { h.MarkCritical(a) }, []string{"3:keep:critical_trace", "4:keep:critical_trace", "5:keep:critical_trace"}},
		}},
		{"Drain releases everything with its own decision", []step{
			{0, func(h *Hold[string]) { h.Add(a, "a1", dropProb); h.Add(b, "b1", dropPar); h.Drain() },
				[]string{"a1:drop:dropped_probabilistic", "b1:drop:parent_not_sampled"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			var r releases
			h := NewHold(HoldConfig{Max: 3, Clock: clock}, r.release)
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				s.do(h)
				if got := r.take(); !reflect.DeepEqual(got, s.released) {
					t.Fatalf("step %d released %q, want %q", i, got, s.released)
				}
			}
		})
	}
}

func TestHoldStats(t *testing.T) {
	clock := newFakeClock()
	var r releases
	h := NewHold(HoldConfig{Max: 2, Clock: clock}, r.release)
	h.Add(TraceID{1}, "x", dropProb)
	h.Add(TraceID{1}, "y", dropProb)
	h.Add(TraceID{2}, "z", dropProb) // overflow: x
	h.MarkCritical(TraceID{1})       // promotes y
	want := HoldStats{Held: 1, Promoted: 1, Overflow: 1}
	if got := h.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	clock.Advance(DefaultHoldWindow)
	h.Flush()
	want = HoldStats{Held: 0, Promoted: 1, Overflow: 1, Expired: 1}
	if got := h.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestHoldRunDrainsOnCancel(t *testing.T) {
	var r releases
	h := NewHold(HoldConfig{Window: time.Hour}, r.release)
	h.Add(TraceID{1}, "x", dropProb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := r.take(), []string{"x:drop:dropped_probabilistic"}; !reflect.DeepEqual(got, want) {
		t.Errorf("released %q, want %q", got, want)
	}
}

func TestHoldReleaseMayCallBack(t *testing.T) {
	clock := newFakeClock()
	var h *Hold[int]
	var got []int
	h = NewHold(HoldConfig{Clock: clock}, func(item int, d Decision) {
		got = append(got, item)
		if item == 1 {
			h.Add(TraceID{9}, 2, keepProb) // must not deadlock
		}
	})
	h.Add(TraceID{1}, 1, dropProb)
	clock.Advance(DefaultHoldWindow)
	h.Flush()
	if !reflect.DeepEqual(got, []int{1, 2}) {
		t.Errorf("released %v, want [1 2]", got)
	}
}

// With nothing held Run stops ticking; an Add wakes it, and the span still
// leaves at the end of its window.
func TestHoldRunIdles(t *testing.T) {
	var r releases
	h := NewHold(HoldConfig{Window: 40 * time.Millisecond}, r.release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	idle := func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.idle }
	for deadline := time.Now().Add(time.Second); !idle(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Run never went idle with nothing held")
		}
	}
	for round, item := range []string{"a", "b"} {
		added := time.Now()
		h.Add(TraceID{byte(round + 1)}, item, dropProb)
		var got []string
		for deadline := time.Now().Add(2 * time.Second); len(got) == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %s not released 2 s after its 40 ms window", round, item)
			}
			got = r.take()
		}
		if waited := time.Since(added); waited < 40*time.Millisecond {
			t.Errorf("round %d: released after %s, before its window", round, waited)
		}
		if want := []string{item + ":drop:dropped_probabilistic"}; !reflect.DeepEqual(got, want) {
			t.Errorf("round %d: released %q, want %q", round, got, want)
		}
		for deadline := time.Now().Add(time.Second); !idle(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: Run did not go idle again", round)
			}
		}
	}
}
