package sampler

import (
	"testing"
	"time"
)

func TestCriticalTTL(t *testing.T) {
	clock := newFakeClock()
	c := NewCritical(0, 0, clock) // defaults: 300 s
	a, b := TraceID{1}, TraceID{2}
	c.Mark(a)
	steps := []struct {
		advance time.Duration
		mark    *TraceID
		wantA   bool
		wantB   bool
	}{
		{0, nil, true, false},
		{299 * time.Second, &b, true, true},   // a at 299 s: still there
		{time.Second, nil, false, true},       // a at 300 s: expired
		{250 * time.Second, &b, false, true},  // b re-marked at 550 s
		{299 * time.Second, nil, false, true}, // b lives to 850 s
		{time.Second, nil, false, false},
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		if s.mark != nil {
			c.Mark(*s.mark)
		}
		if got := c.Contains(a); got != s.wantA {
			t.Errorf("step %d: Contains(a) = %v, want %v", i, got, s.wantA)
		}
		if got := c.Contains(b); got != s.wantB {
			t.Errorf("step %d: Contains(b) = %v, want %v", i, got, s.wantB)
		}
	}
	if c.Len() != 0 {
		t.Errorf("Len() = %d after everything expired, want 0", c.Len())
	}
}

func TestCriticalBounded(t *testing.T) {
	clock := newFakeClock()
	c := NewCritical(time.Minute, 3, clock)
	ids := []TraceID{{1}, {2}, {3}, {4}}
	c.Mark(ids[0])
	c.Mark(ids[1])
	c.Mark(ids[2])
	c.Mark(ids[0]) // refreshed: now the most recent
	c.Mark(ids[3]) // evicts the least recently marked, ids[1]
	want := []bool{true, false, true, true}
	for i, id := range ids {
		if got := c.Contains(id); got != want[i] {
			t.Errorf("Contains(%d) = %v, want %v", i, got, want[i])
		}
	}
	if c.Len() != 3 || c.Evicted() != 1 {
		t.Errorf("Len() = %d, Evicted() = %d; want 3, 1", c.Len(), c.Evicted())
	}
	// Expired ids make room without counting as evictions.
	clock.Advance(time.Minute)
	c.Mark(TraceID{5})
	if c.Len() != 1 || c.Evicted() != 1 {
		t.Errorf("after expiry Len() = %d, Evicted() = %d; want 1, 1", c.Len(), c.Evicted())
	}
}
