package sampler

import (
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// randomIDs returns n trace ids from a seeded generator, so a failure can
// be reproduced.
func randomIDs(seed uint64, n int) []TraceID {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ids := make([]TraceID, n)
	for i := range ids {
		for j := range ids[i] {
			ids[i][j] = byte(r.Uint32())
		}
	}
	return ids
}

// inBinomialBand fails the test unless k successes out of n are within
// sigmas standard deviations of a binomial(n, p) mean.
func inBinomialBand(t *testing.T, what string, k, n int, p, sigmas float64) {
	t.Helper()
	mean := float64(n) * p
	sd := math.Sqrt(float64(n) * p * (1 - p))
	if d := math.Abs(float64(k) - mean); d > sigmas*sd {
		t.Errorf("%s: kept %d of %d, want %.0f ± %.0f (%.0f sigma), off by %.1f sigma",
			what, k, n, mean, sigmas*sd, sigmas, d/sd)
	}
}

// mustParse parses strategies or fails the test.
func mustParse(t *testing.T, js string) *Strategies {
	t.Helper()
	st, err := Parse([]byte(js))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return st
}

func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed+1))
}

func ftoa(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64)
}
