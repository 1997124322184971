package metrics

import (
	"testing"
	"time"
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
