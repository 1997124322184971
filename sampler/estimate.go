package sampler

import (
	"math"
	"slices"
	"time"
)

// Clock tells the time; tests inject a fake one.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// readAt is now, a reading the caller made, when callerTime (no clock was
// configured) and now is set; else c's reading.
func readAt(c Clock, callerTime bool, now time.Time) time.Time {
	if now.IsZero() || !callerTime {
		return c.Now()
	}
	return now
}

// bucket is a token bucket: it refills at the rate it is asked for and holds
// at most one second's worth (at least one token), so a quiet service gets
// its first traces at once and a busy one settles at the rate.
type bucket struct {
	tokens float64
	last   time.Time
	// kept is a moving average of the fraction of roots let through, which
	// is what a rate limit amounts to as a probability.
	kept float64
}

// keptAlpha weighs the latest decision in bucket.kept: about the last few
// hundred decisions count.
const keptAlpha = 0.01

func (b *bucket) take(now time.Time, rate float64) bool {
	burst := max(rate, 1)
	switch {
	case b.last.IsZero():
		b.tokens, b.kept, b.last = burst, 1, now
	case now.After(b.last):
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
		b.last = now
	}
	b.tokens = min(b.tokens, burst) // the rate may have been lowered
	ok := rate > 0 && b.tokens >= 1
	x := 0.0
	if ok {
		b.tokens--
		x = 1
	}
	b.kept += keptAlpha * (x - b.kept)
	return ok
}

// window is a bounded sliding window over an operation's latest durations
// that answers one quantile. Sorting on every span would cost too much, so the
// quantile is recomputed after every recomputeEvery new samples and is at
// most that many samples stale.
type window struct {
	buf   []time.Duration // ring, grows to the window size
	next  int             // where the next sample goes once buf is full
	fresh int             // samples added since q was computed
	q     time.Duration
	ready bool
}

const recomputeEvery = 256

func (w *window) add(d time.Duration, size int) {
	if len(w.buf) < size {
		w.buf = append(w.buf, d)
	} else {
		w.buf[w.next] = d
		w.next = (w.next + 1) % len(w.buf)
	}
	w.fresh++
}

// quantile returns the q-quantile (nearest rank) of the window once it has
// at least minSamples samples. scratch is reused to sort without allocating.
func (w *window) quantile(q float64, minSamples int, scratch *[]time.Duration) (time.Duration, bool) {
	if len(w.buf) < minSamples {
		return 0, false
	}
	if !w.ready || w.fresh >= recomputeEvery {
		s := append((*scratch)[:0], w.buf...)
		rank := int(math.Ceil(q*float64(len(s)))) - 1
		w.q = nth(s, min(max(rank, 0), len(s)-1))
		w.ready, w.fresh = true, 0
		*scratch = s
	}
	return w.q, true
}

// nth returns the k-th smallest of s (0-based), what s[k] would be sorted,
// reordering s: a quickselect, linear on average where sorting the window
// cost n log n every recomputeEvery spans. A run of bad pivots falls back
// to sorting what is left, so no input costs more than a sort.
func nth(s []time.Duration, k int) time.Duration {
	lo, hi := 0, len(s)-1
	for tries := 0; lo < hi; tries++ {
		if tries == 64 {
			slices.Sort(s[lo : hi+1])
			return s[k]
		}
		// Median of three as the pivot, moved to hi.
		mid := lo + (hi-lo)/2
		if s[mid] < s[lo] {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if s[hi] < s[lo] {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if s[mid] < s[hi] {
			s[mid], s[hi] = s[hi], s[mid]
		}
		pivot := s[hi]
		// Three-way partition: < pivot, == pivot, > pivot; equal durations
		// are common (a clock's granularity) and must not slow it down.
		lt, i, gt := lo, lo, hi
		for i <= gt {
			switch {
			case s[i] < pivot:
				s[lt], s[i] = s[i], s[lt]
				lt++
				i++
			case s[i] > pivot:
				s[i], s[gt] = s[gt], s[i]
				gt--
			default:
				i++
			}
		}
		switch {
		case k < lt:
			hi = lt - 1
		case k > gt:
			lo = gt + 1
		default:
			return pivot
		}
	}
	return s[k]
}

// Latency histogram for SLA windows: histBuckets buckets, histPerOctave to a
// doubling (so a p95 is within 19 %), the first ending at histBase, the last
// at about 1.5 h and holding everything slower.
const (
	histBuckets   = 112
	histPerOctave = 4
	histBase      = 25 * time.Microsecond
)

func histIndex(d time.Duration) int {
	if d <= histBase {
		return 0
	}
	i := int(math.Ceil(histPerOctave * math.Log2(float64(d)/float64(histBase))))
	return min(i, histBuckets-1)
}

// histUpper is the upper bound of bucket i.
func histUpper(i int) float64 {
	return float64(histBase) * math.Exp2(float64(i)/histPerOctave)
}

// timeWindow keeps counts, errors and a latency histogram over the last
// `window` of time in slots, so an observation costs O(1) whatever the
// request rate and memory stays fixed. The window slides a slot at a time.
type timeWindow struct {
	slots   []slot
	slotLen time.Duration
}

type slot struct {
	index  int64 // which slotLen-long interval since the epoch this counts
	count  uint64
	errors uint64
	hist   [histBuckets]uint32
}

const windowSlots = 6

func newTimeWindow(window time.Duration) timeWindow {
	return timeWindow{slots: make([]slot, windowSlots), slotLen: max(window/windowSlots, time.Millisecond)}
}

func (w *timeWindow) observe(now time.Time, d time.Duration, isError bool) {
	idx := now.UnixNano() / int64(w.slotLen)
	s := &w.slots[idx%int64(len(w.slots))]
	if s.index != idx {
		*s = slot{index: idx}
	}
	s.count++
	if isError {
		s.errors++
	}
	s.hist[histIndex(d)]++
}

// summary is what an SLA evaluation looks at.
type summary struct {
	count      uint64
	errorRatio float64
	p95        time.Duration
}

func (w *timeWindow) summarize(now time.Time) summary {
	cur := now.UnixNano() / int64(w.slotLen)
	var hist [histBuckets]uint64
	var sum summary
	var errs uint64
	for i := range w.slots {
		s := &w.slots[i]
		if s.count == 0 || s.index <= cur-int64(len(w.slots)) || s.index > cur {
			continue
		}
		sum.count += s.count
		errs += s.errors
		for b, n := range s.hist {
			hist[b] += uint64(n)
		}
	}
	if sum.count == 0 {
		return sum
	}
	sum.errorRatio = float64(errs) / float64(sum.count)
	sum.p95 = histQuantile(&hist, sum.count, 0.95)
	return sum
}

// histQuantile interpolates linearly inside the bucket that holds the rank.
func histQuantile(hist *[histBuckets]uint64, total uint64, q float64) time.Duration {
	rank := q * float64(total)
	var seen float64
	for i, n := range hist {
		if n == 0 {
			continue
		}
		if seen+float64(n) >= rank {
			lower := 0.0
			if i > 0 {
				lower = histUpper(i - 1)
			}
			frac := (rank - seen) / float64(n)
			return time.Duration(lower + frac*(histUpper(i)-lower))
		}
		seen += float64(n)
	}
	return time.Duration(histUpper(histBuckets - 1))
}
