package tracer

import "time"

// pauseLog remembers the recent GC pauses of each process so spans can say
// how long the service was stopped while they ran. A pause event reaches
// user space before the spans that outlive it (events leave in the order
// they end), so a span finds every pause that ended within it.
type pauseLog struct {
	byPID map[int][]window
}

type window struct{ start, end time.Time }

// pauseKeep bounds the pauses kept per process.
const pauseKeep = 256

func newPauseLog() *pauseLog { return &pauseLog{byPID: make(map[int][]window)} }

func (l *pauseLog) add(pid int, start, end time.Time) {
	ws := append(l.byPID[pid], window{start, end})
	if len(ws) > pauseKeep {
		ws = ws[len(ws)-pauseKeep:]
	}
	l.byPID[pid] = ws
}

// overlap returns the paused time inside [start, end] and the pauses that
// touched it.
func (l *pauseLog) overlap(pid int, start, end time.Time) (time.Duration, int) {
	var total time.Duration
	n := 0
	ws := l.byPID[pid]
	for i := len(ws) - 1; i >= 0; i-- {
		w := ws[i]
		if w.end.Before(start) {
			break // older ones end even earlier
		}
		s, e := w.start, w.end
		if s.Before(start) {
			s = start
		}
		if e.After(end) {
			e = end
		}
		if e.After(s) {
			total += e.Sub(s)
			n++
		}
	}
	return total, n
}

func (l *pauseLog) forget(pid int) { delete(l.byPID, pid) }
