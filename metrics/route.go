package metrics

import (
	"strings"
	"sync"
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
	seen     map[string]map[string]struct{} // service -> routes
	overflow uint64
}

func newRouteCap(max int) *routeCap {
	return &routeCap{max: max, seen: make(map[string]map[string]struct{})}
}

// label returns route itself while the service is under its cap.
func (c *routeCap) label(service, route string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	routes := c.seen[service]
	if routes == nil {
		routes = make(map[string]struct{})
		c.seen[service] = routes
	}
	if _, ok := routes[route]; ok {
		return route
	}
	if len(routes) >= c.max {
		c.overflow++
		return "other"
	}
	routes[route] = struct{}{}
	return route
}

func (c *routeCap) overflowed() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.overflow
}
