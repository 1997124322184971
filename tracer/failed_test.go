package tracer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/sampler"
	"github.com/golens/golens/span"
)

type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestErrorRuleAgrees: the span's status and the sampler's view of the
// service's health come from the same rule. They used to disagree on a
// gRPC server call whose code the probe could not read (-1): the span
// said error, the health said fine.
func TestErrorRuleAgrees(t *testing.T) {
	p := &event.Process{PID: 1, ServiceName: "svc", ExeName: "svc"}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		ev     func(i int) event.Event
		failed bool
	}{
		{"grpc unknown code", func(i int) event.Event {
			return &event.GRPC{Process: p, Start: now, End: now.Add(time.Millisecond), Server: true, Method: "/p.S/M", Code: -1,
				SpanContext: event.SpanContext{TraceID: event.TraceID{byte(i), 1}, SpanID: event.SpanID{byte(i), 1}}}
		}, true},
		{"grpc NOT_FOUND", func(i int) event.Event {
			return &event.GRPC{Process: p, Start: now, End: now.Add(time.Millisecond), Server: true, Method: "/p.S/M", Code: 5,
				SpanContext: event.SpanContext{TraceID: event.TraceID{byte(i), 2}, SpanID: event.SpanID{byte(i), 2}}}
		}, false},
		{"grpc INTERNAL", func(i int) event.Event {
			return &event.GRPC{Process: p, Start: now, End: now.Add(time.Millisecond), Server: true, Method: "/p.S/M", Code: 13,
				SpanContext: event.SpanContext{TraceID: event.TraceID{byte(i), 3}, SpanID: event.SpanID{byte(i), 3}}}
		}, true},
		{"http 503", func(i int) event.Event {
			return &event.HTTPServer{Process: p, Start: now, End: now.Add(time.Millisecond), Method: "GET", Path: "/x", Status: 503,
				SpanContext: event.SpanContext{TraceID: event.TraceID{byte(i), 4}, SpanID: event.SpanID{byte(i), 4}}}
		}, true},
		{"http 404", func(i int) event.Event {
			return &event.HTTPServer{Process: p, Start: now, End: now.Add(time.Millisecond), Method: "GET", Path: "/x", Status: 404,
				SpanContext: event.SpanContext{TraceID: event.TraceID{byte(i), 5}, SpanID: event.SpanID{byte(i), 5}}}
		}, false},
	}
	const n = 30 // above the SLA's minimum samples
	for _, c := range cases {
		clock := &stepClock{now: now}
		strat, _ := sampler.Parse([]byte(`{"default_strategy": {"type": "probabilistic", "param": 1}}`))
		s := sampler.New(sampler.Config{Clock: clock}, strat)
		tr := New(discard{}, Options{Sampler: s})
		for i := 0; i < n; i++ {
			ev := c.ev(i)
			st := ev.(event.Spanner).Span()
			if (st.Status == span.Error) != c.failed {
				t.Errorf("%s: span status %v, want failed %v", c.name, st.Status, c.failed)
			}
			tr.Record(ev)
		}
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Fatalf("%s: shutdown: %v", c.name, err)
		}
		clock.add(10 * time.Second) // at the next evaluation, inside the window
		h := s.Health()
		want := 0.0
		if c.failed {
			want = 1
		}
		if len(h) != 1 || h[0].Samples != n || h[0].ErrorRatio != want {
			t.Errorf("%s: health %+v, want %d samples, error ratio %v", c.name, h, n, want)
		}
	}
}
