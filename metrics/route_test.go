package metrics

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestNormalizePath(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "/",
		"/":                  "/",
		"/users/42":          "/users/{id}",
		"/users/42/orders/7": "/users/{id}/orders/{id}",
		"/o/123e4567-e89b-12d3-a456-426614174000": "/o/{id}",
		"/blob/9f86d081884c7d659a2feaa0c55ad015":  "/blob/{id}",
		"/static/app.js":                          "/static/app.js",
		"/deadbeef":                               "/deadbeef", // short hex words stay
		"/v2/api":                                 "/v2/api",
		"/abcdefabcdefabcdef":                     "/abcdefabcdefabcdef", // no digit: a word
	} {
		if got := NormalizePath(in); got != want {
			t.Errorf("NormalizePath(%q) = %q, want %q", in, got, want)
		}
	}
}

// A path without identifiers is its own label: no allocation per request
// for the common case (the agent normalises every server span's path).
func TestNormalizePathNoAlloc(t *testing.T) {
	for _, p := range []string{"/", "/api/users", "/static/app.js", "//a//b/"} {
		if n := testing.AllocsPerRun(100, func() { _ = NormalizePath(p) }); n != 0 {
			t.Errorf("NormalizePath(%q): %v allocations, want 0", p, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = NormalizePath("/users/42/orders/7") }); n != 1 {
		t.Errorf("NormalizePath with identifiers: %v allocations, want 1", n)
	}
}

func TestRouteCap(t *testing.T) {
	c := newLabelCap(2)
	now := time.Unix(1700000000, 0)
	for _, r := range []string{"/a", "/b", "/a"} {
		if got := c.label("s1", r, now); got != r {
			t.Errorf("label(%q) = %q under the cap", r, got)
		}
	}
	if got := c.label("s1", "/c", now); got != "other" {
		t.Errorf("third route = %q, want other", got)
	}
	if got := c.label("s2", "/c", now); got != "/c" {
		t.Errorf("cap is per service: got %q", got)
	}
	if c.overflowed() != 1 {
		t.Errorf("overflow %d, want 1", c.overflowed())
	}
	// Idle routes give their slot back.
	c.label("s1", "/a", now.Add(5*time.Minute))
	c.expire(now.Add(11*time.Minute), 10*time.Minute)
	if got := c.label("s1", "/c", now.Add(11*time.Minute)); got != "/c" {
		t.Errorf("after /b expired, /c = %q", got)
	}
}

// FuzzNormalizePath: any path gives a label of the same segments, valid
// UTF-8 when the path was, stable when normalised again, and no longer
// than four bytes per byte of the path ("{id}" for a one-digit segment).
func FuzzNormalizePath(f *testing.F) {
	for _, p := range []string{"", "/", "/users/42", "/users/42/orders/7", "/o/123e4567-e89b-12d3-a456-426614174000",
		"/blob/9f86d081884c7d659a2feaa0c55ad015", "/static/app.js", "//a//1/", "/caf\xc3\xa9/\xff\xfe", "/{id}/x"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := NormalizePath(p)
		if p == "" {
			if got != "/" {
				t.Fatalf("empty path gives %q", got)
			}
			return
		}
		if strings.Count(got, "/") != strings.Count(p, "/") {
			t.Fatalf("NormalizePath(%q) = %q: segments changed", p, got)
		}
		if again := NormalizePath(got); again != got {
			t.Fatalf("NormalizePath(%q) = %q, but again %q", p, got, again)
		}
		if utf8.ValidString(p) && !utf8.ValidString(got) {
			t.Fatalf("NormalizePath(%q) = %q is not valid UTF-8", p, got)
		}
		// Segment by segment, each identifier and nothing else replaced.
		segs := strings.Split(p, "/")
		for i, seg := range segs {
			if looksLikeID(seg) {
				segs[i] = "{id}"
			}
		}
		if want := strings.Join(segs, "/"); got != want {
			t.Fatalf("NormalizePath(%q) = %q, want %q", p, got, want)
		}
		if len(got) > 4*len(p) {
			t.Fatalf("NormalizePath(%q) = %q: %d bytes from %d", p, got, len(got), len(p))
		}
	})
}
