package sampler

import (
	"slices"
	"testing"
)

// The levels rise with the queue's fill from the high-water mark, one per
// step, jump at once when the fill does, and fall back only below a
// level's start minus the hysteresis; every change is reported in order.
func TestPressureLevels(t *testing.T) {
	var changes [][2]int
	p := NewPressure(PressureConfig{OnChange: func(level, before int) { changes = append(changes, [2]int{level, before}) }})
	steps := []struct {
		queued int // of 100
		want   int
	}{
		{0, 0}, {49, 0}, {50, 1}, {59, 1}, {60, 2}, {70, 3}, {80, 4}, {90, 5}, {100, 5},
		// Draining: a level is left 5 points below its start.
		{86, 5}, {84, 4}, {76, 4}, {74, 3}, {66, 3}, {64, 2},
		// Rising again within the hysteresis band goes back up at once.
		{70, 3},
		// A sudden drain steps down through every level at once.
		{10, 0},
		// A sudden burst jumps up.
		{95, 5},
		{44, 0},
	}
	for _, s := range steps {
		if got, _ := p.Update(s.queued, 100); got != s.want {
			t.Errorf("queue at %d%%: level %d, want %d", s.queued, got, s.want)
		}
	}
	want := [][2]int{{1, 0}, {2, 1}, {3, 2}, {4, 3}, {5, 4}, {4, 5}, {3, 4}, {2, 3}, {3, 2}, {0, 3}, {5, 0}, {0, 5}}
	if !slices.Equal(changes, want) {
		t.Errorf("changes (level, before) %v, want %v", changes, want)
	}
	if got := p.Level(); got != 0 {
		t.Errorf("Level() %d after draining, want 0", got)
	}
	// No capacity is full.
	if got, _ := p.Update(0, 0); got != p.Levels() {
		t.Errorf("zero capacity: level %d, want %d", got, p.Levels())
	}
}

func TestPressureFactor(t *testing.T) {
	p := NewPressure(PressureConfig{})
	for level, want := range []float64{1, 0.5, 0.25, 0.125, 0.0625, 0, 0} {
		if got := p.Factor(level); got != want {
			t.Errorf("Factor(%d) = %v, want %v", level, got, want)
		}
	}
}

// Thinning a span kept at a known probability raises its threshold to the
// product's and decides by the trace id's randomness, so the kept share is
// that product and every span of one trace gets the same verdict; without
// a known probability the share is the factor and no th is recorded.
func TestThin(t *testing.T) {
	ids := randomIDs(7, 40000)
	base := ThresholdFor(0.5)
	kept := 0
	for _, id := range ids {
		if !base.Keep(id) {
			continue // dropped before any pressure
		}
		keep, th, record := Thin(id, base, true, 0.25)
		if again, _, _ := Thin(id, base, true, 0.25); again != keep {
			t.Fatalf("trace %s: verdict changed between spans", id)
		}
		if keep {
			kept++
			if !record || th != ThresholdFor(0.125) {
				t.Fatalf("kept with th %v (record %v), want %v recorded", th, record, ThresholdFor(0.125))
			}
		}
	}
	inBinomialBand(t, "0.5 thinned by 0.25", kept, len(ids), 0.125, 5)

	kept = 0
	for _, id := range ids {
		keep, _, record := Thin(id, 0, false, 0.5)
		if record {
			t.Fatal("an unknown probability recorded a th")
		}
		if keep {
			kept++
		}
	}
	inBinomialBand(t, "unknown thinned by 0.5", kept, len(ids), 0.5, 5)

	// Factor 1 changes nothing; factor 0 keeps nothing.
	for _, id := range ids[:100] {
		if keep, th, record := Thin(id, base, true, 1); !keep || th != base || !record {
			t.Fatalf("factor 1: %v %v %v", keep, th, record)
		}
		if keep, _, _ := Thin(id, base, true, 0); keep {
			t.Fatal("factor 0 kept a span")
		}
	}
}
