package metrics

import (
	"strings"
	"sync"
	"time"
)

// NormalizePath turns a raw URL path into a bounded route label when the
// mux pattern is unknown: segments that look like identifiers (numbers,
// UUIDs, long hex) become "{id}".
func NormalizePath(p string) string {
	if p == "" {
		return "/"
	}
	// Most paths have no identifier in them: answer with p itself, no
	// allocation; build a new string only from the first identifier on.
	var b strings.Builder
	done := 0 // p[:done] is in b, once b is started
	for start := 0; start <= len(p); {
		end := strings.IndexByte(p[start:], '/')
		if end < 0 {
			end = len(p)
		} else {
			end += start
		}
		if looksLikeID(p[start:end]) {
			if b.Len() == 0 {
				b.Grow(len(p) + 8)
			}
			b.WriteString(p[done:start])
			b.WriteString("{id}")
			done = end
		}
		start = end + 1
	}
	if b.Len() == 0 {
		return p
	}
	b.WriteString(p[done:])
	return b.String()
}

func looksLikeID(s string) bool {
	if s == "" {
		return false
	}
	digits, hex := 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
			hex++
		case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			hex++
		case c == '-':
		default:
			return false
		}
	}
	if digits == len(s) {
		return true // 42
	}
	if len(s) == 36 && strings.Count(s, "-") == 4 {
		return true // a UUID
	}
	// Long hex runs with at least one digit: object ids, hashes.
	return hex == len(s) && len(s) >= 16 && digits > 0
}

// Overflow is the label value that stands for every value beyond a cap.
const Overflow = "other"

// labelCap limits the distinct values of one label per service (routes,
// gRPC methods, server addresses); beyond it, new values are reported as
// Overflow, so one noisy service or client cannot explode the series count.
type labelCap struct {
	mu       sync.Mutex
	max      int
	seen     map[string]map[string]time.Time // service -> value -> last use
	overflow uint64
}

func newLabelCap(max int) *labelCap {
	return &labelCap{max: max, seen: make(map[string]map[string]time.Time)}
}

// label returns value itself while the service is under its cap.
func (c *labelCap) label(service, value string, now time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	values := c.seen[service]
	if values == nil {
		values = make(map[string]time.Time)
		c.seen[service] = values
	}
	if _, ok := values[value]; ok {
		values[value] = now
		return value
	}
	if len(values) >= c.max {
		c.overflow++
		return Overflow
	}
	values[value] = now
	return value
}

// expire frees the cap slots of values unused for ttl.
func (c *labelCap) expire(now time.Time, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for svc, values := range c.seen {
		for v, last := range values {
			if now.Sub(last) > ttl {
				delete(values, v)
			}
		}
		if len(values) == 0 {
			delete(c.seen, svc)
		}
	}
}

func (c *labelCap) overflowed() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.overflow
}
