package sampler

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestWindowQuantile(t *testing.T) {
	var w window
	var scratch []time.Duration
	ms := time.Millisecond
	for i := 1; i <= 99; i++ {
		w.add(time.Duration(i)*ms, 1000)
	}
	if _, ok := w.quantile(0.99, 100, &scratch); ok {
		t.Fatal("quantile ready with 99 samples, want 100")
	}
	w.add(100*ms, 1000)
	if q, ok := w.quantile(0.99, 100, &scratch); !ok || q != 99*ms {
		t.Errorf("p99 of 1..100 ms = %v, %v; want 99ms", q, ok)
	}
	// The window keeps the latest 1000 only.
	for range 1000 {
		w.add(5*ms, 1000)
	}
	if q, _ := w.quantile(0.99, 100, &scratch); q != 5*ms {
		t.Errorf("p99 after the window filled with 5 ms = %v", q)
	}
	if len(w.buf) != 1000 {
		t.Errorf("window holds %d samples, want 1000", len(w.buf))
	}
}

func TestTimeWindowSummary(t *testing.T) {
	tests := []struct {
		name string
		fill func(add func(d time.Duration, isError bool))
		p95  time.Duration
		errs float64
	}{
		{"uniform 1..1000 ms", func(add func(time.Duration, bool)) {
			for i := 1; i <= 1000; i++ {
				add(time.Duration(i)*time.Millisecond, i%100 == 0)
			}
		}, 950 * time.Millisecond, 0.01},
		{"constant 300 ms", func(add func(time.Duration, bool)) {
			for range 500 {
				add(300*time.Millisecond, false)
			}
		}, 300 * time.Millisecond, 0},
		{"5% slow", func(add func(time.Duration, bool)) {
			for i := range 1000 {
				d := 10 * time.Millisecond
				if i%20 == 0 {
					d = 2 * time.Second
				}
				add(d, true)
			}
		}, 10 * time.Millisecond, 1},
		{"beyond the last bucket counts as its bound (about 1.5 h)", func(add func(time.Duration, bool)) {
			add(time.Nanosecond, false)
			add(100*time.Hour, false)
		}, time.Duration(histUpper(histBuckets - 1)), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := newFakeClock().Now()
			w := newTimeWindow(time.Minute)
			tt.fill(func(d time.Duration, isError bool) { w.observe(now, d, isError) })
			sum := w.summarize(now)
			// A histogram bucket spans a factor 2^(1/4) ≈ 1.19.
			if r := float64(sum.p95) / float64(tt.p95); r < 1/1.19 || r > 1.19 {
				t.Errorf("p95 = %v, want %v within a bucket (%.2fx)", sum.p95, tt.p95, r)
			}
			if math.Abs(sum.errorRatio-tt.errs) > 1e-9 {
				t.Errorf("error ratio = %v, want %v", sum.errorRatio, tt.errs)
			}
		})
	}
}

func TestTimeWindowSlides(t *testing.T) {
	clock := newFakeClock()
	w := newTimeWindow(time.Minute)
	w.observe(clock.Now(), time.Second, true)
	clock.Advance(30 * time.Second)
	w.observe(clock.Now(), time.Millisecond, false)
	if sum := w.summarize(clock.Now()); sum.count != 2 {
		t.Errorf("after 30 s: %d samples, want 2", sum.count)
	}
	clock.Advance(35 * time.Second)
	if sum := w.summarize(clock.Now()); sum.count != 1 || sum.errorRatio != 0 {
		t.Errorf("after 65 s: %+v, want only the later, healthy sample", sum)
	}
	clock.Advance(time.Minute)
	if sum := w.summarize(clock.Now()); sum.count != 0 {
		t.Errorf("after 125 s: %+v, want empty", sum)
	}
}

// nth answers what sorting answers, for every rank, on inputs with runs
// of equal values, sorted and reversed ones, and random ones.
func TestNthIsSortedRank(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := [][]time.Duration{{5}, {2, 1}, {3, 3, 3, 3}}
	for _, n := range []int{10, 257, 1000} {
		random, few, asc, desc := make([]time.Duration, n), make([]time.Duration, n), make([]time.Duration, n), make([]time.Duration, n)
		for i := range n {
			random[i] = time.Duration(rng.Int64N(1e9))
			few[i] = time.Duration(rng.IntN(3))
			asc[i], desc[i] = time.Duration(i), time.Duration(n-i)
		}
		inputs = append(inputs, random, few, asc, desc)
	}
	for _, in := range inputs {
		sorted := slices.Sorted(slices.Values(in))
		for k := range in {
			if got := nth(slices.Clone(in), k); got != sorted[k] {
				t.Fatalf("nth(len %d, %d) = %v, sorted says %v", len(in), k, got, sorted[k])
			}
		}
	}
}

func BenchmarkQuantile(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var w window
	for range DefaultLatencyWindow {
		w.add(time.Duration(rng.Int64N(1e7)), DefaultLatencyWindow)
	}
	var scratch []time.Duration
	for b.Loop() {
		w.ready = false
		w.quantile(0.99, 1, &scratch)
	}
}
