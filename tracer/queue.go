package tracer

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/golens/golens/span"
)

// spanQueue holds the spans waiting for export. The reader pushes span
// after span; the export loop is woken only when it has something to do:
// at the first span of a batch (to start the batch's flush timer) and when
// a batch is full, not once per span as a channel wakes its receiver (at
// 8,000 spans/s, a goroutine handoff and often an idle processor woken per
// span).
type spanQueue struct {
	mu     sync.Mutex
	items  []*span.Span // oldest first
	max    int
	batch  int
	closed bool
	// sleeping: the export loop waits on ready for the next push that
	// gives it work.
	sleeping bool
	ready    chan struct{}
	n        atomic.Int64  // len(items), read without the lock
	wakes    atomic.Uint64 // times a push woke the export loop
}

func newSpanQueue(max, batch int) *spanQueue {
	return &spanQueue{max: max, batch: batch, ready: make(chan struct{}, 1), items: make([]*span.Span, 0, batch)}
}

// len is how many spans wait.
func (q *spanQueue) len() int { return int(q.n.Load()) }

// push adds s; false when the queue is full (or closed): s is dropped.
func (q *spanQueue) push(s *span.Span) bool {
	q.mu.Lock()
	if q.closed || len(q.items) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, s)
	q.n.Store(int64(len(q.items)))
	wake := q.sleeping && (len(q.items) == 1 || len(q.items) >= q.batch)
	if wake {
		q.sleeping = false
	}
	q.mu.Unlock()
	if wake {
		q.wakes.Add(1)
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return true
}

// close ends the queue: what waits is still taken, nothing more is pushed.
func (q *spanQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.sleeping = false
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take waits for a batch: up to q.batch spans once that many wait, once
// flush has passed since the first of them was seen, or once the queue is
// closed. It appends them to dst; ok is false when the queue is closed and
// empty.
func (q *spanQueue) take(dst []*span.Span, flush time.Duration) (out []*span.Span, ok bool) {
	var (
		timer *time.Timer
		due   <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		q.mu.Lock()
		n := len(q.items)
		expired := false
		if due != nil {
			select {
			case <-due:
				expired = true
			default:
			}
		}
		if n >= q.batch || (n > 0 && (q.closed || expired)) {
			k := min(n, q.batch)
			dst = append(dst, q.items[:k]...)
			rest := copy(q.items, q.items[k:])
			clear(q.items[rest:])
			q.items = q.items[:rest]
			q.n.Store(int64(rest))
			q.mu.Unlock()
			return dst, true
		}
		if q.closed {
			q.mu.Unlock()
			return dst, false
		}
		q.sleeping = true
		q.mu.Unlock()
		if n > 0 && timer == nil {
			// The batch's first span is here: it goes out within flush.
			timer = time.NewTimer(flush)
			due = timer.C
		}
		select {
		case <-q.ready:
		case <-due:
			// Seen again under the lock, above.
			due = closedChan
		}
	}
}

// closedChan is always ready: a timer that fired, read once already.
var closedChan = func() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()
