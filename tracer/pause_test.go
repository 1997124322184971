package tracer

import (
	"testing"
	"time"
)

func TestPauseOverlap(t *testing.T) {
	l := newPauseLog()
	t0 := time.Unix(1700000000, 0)
	us := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Microsecond) }
	for _, w := range [][2]int{{0, 100}, {500, 600}, {1000, 1300}} {
		l.add(1, us(w[0]), us(w[1]))
	}
	for _, tc := range []struct {
		start, end int
		want       time.Duration
		n          int
	}{
		{50, 1100, 50*time.Microsecond + 100*time.Microsecond + 100*time.Microsecond, 3},
		{200, 400, 0, 0},
		{550, 560, 10 * time.Microsecond, 1},
		{1400, 2000, 0, 0},
	} {
		got, n := l.overlap(1, us(tc.start), us(tc.end))
		if got != tc.want || n != tc.n {
			t.Errorf("[%d,%d]: %s over %d pauses, want %s over %d", tc.start, tc.end, got, n, tc.want, tc.n)
		}
	}
	if got, _ := l.overlap(2, us(0), us(2000)); got != 0 {
		t.Errorf("another process's pauses counted: %s", got)
	}
}
