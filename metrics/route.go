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
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if looksLikeID(s) {
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, "/")
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

// routeCap limits the distinct route labels per service; beyond it, new
// routes are reported as "other" so one noisy service cannot explode the
// series count.
type routeCap struct {
	mu       sync.Mutex
	max      int
	seen     map[string]map[string]time.Time // service -> route -> last use
	overflow uint64
}

func newRouteCap(max int) *routeCap {
	return &routeCap{max: max, seen: make(map[string]map[string]time.Time)}
}

// label returns route itself while the service is under its cap.
func (c *routeCap) label(service, route string, now time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	routes := c.seen[service]
	if routes == nil {
		routes = make(map[string]time.Time)
		c.seen[service] = routes
	}
	if _, ok := routes[route]; ok {
		routes[route] = now
		return route
	}
	if len(routes) >= c.max {
		c.overflow++
		return "other"
	}
	routes[route] = now
	return route
}

// expire frees the cap slots of routes unused for ttl.
func (c *routeCap) expire(now time.Time, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for svc, routes := range c.seen {
		for r, last := range routes {
			if now.Sub(last) > ttl {
				delete(routes, r)
			}
		}
		if len(routes) == 0 {
			delete(c.seen, svc)
		}
	}
}

func (c *routeCap) overflowed() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.overflow
}
