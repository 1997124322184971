package sampler

import (
	"container/list"
	"sync"
	"time"
)

// Critical remembers the ids of traces that had a critical span, each for a
// time to live, so the other spans of such a trace are kept too. It holds at
// most a fixed number of ids and forgets the least recently marked first.
// It is safe for concurrent use.
type Critical struct {
	ttl   time.Duration
	max   int
	clock Clock

	mu    sync.Mutex
	order *list.List // of *criticalEntry, most recently marked at the front
	ids   map[TraceID]*list.Element
	// evicted counts ids forgotten before their time because of max.
	evicted uint64
}

type criticalEntry struct {
	id      TraceID
	expires time.Time
}

// NewCritical returns a memory of at most size critical trace ids, each
// kept for ttl; ttl <= 0 and size <= 0 take DefaultCriticalTTL and
// DefaultCriticalMax; a nil clock is the system clock.
func NewCritical(ttl time.Duration, size int, clock Clock) *Critical {
	setDefault(&ttl, DefaultCriticalTTL)
	setDefault(&size, DefaultCriticalMax)
	if clock == nil {
		clock = systemClock{}
	}
	return &Critical{ttl: ttl, max: size, clock: clock, order: list.New(), ids: make(map[TraceID]*list.Element)}
}

// Mark remembers id as critical for the time to live from now.
func (c *Critical) Mark(id TraceID) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.ids[id]; ok {
		e.Value.(*criticalEntry).expires = now.Add(c.ttl)
		c.order.MoveToFront(e)
		return
	}
	c.ids[id] = c.order.PushFront(&criticalEntry{id: id, expires: now.Add(c.ttl)})
	c.expire(now)
	for c.order.Len() > c.max {
		c.remove(c.order.Back())
		c.evicted++
	}
}

// Contains reports whether id was marked critical within the time to live.
func (c *Critical) Contains(id TraceID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.ids[id]
	if !ok {
		return false // most spans: no clock read for them
	}
	if now := c.clock.Now(); !now.Before(e.Value.(*criticalEntry).expires) {
		c.remove(e)
		return false
	}
	return true
}

// Len returns how many trace ids are remembered (expired ones may linger
// until the next Mark).
func (c *Critical) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// Evicted returns how many ids were forgotten early to stay within max.
func (c *Critical) Evicted() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evicted
}

// expire drops expired ids from the back; every id has the same time to
// live, so the back is always the first to expire.
func (c *Critical) expire(now time.Time) {
	for e := c.order.Back(); e != nil && !now.Before(e.Value.(*criticalEntry).expires); e = c.order.Back() {
		c.remove(e)
	}
}

func (c *Critical) remove(e *list.Element) {
	delete(c.ids, e.Value.(*criticalEntry).id)
	c.order.Remove(e)
}
