package tracer

import (
	"sync"
	"testing"
	"time"

	"github.com/golens/golens/span"
)

func spansN(n int) []*span.Span {
	out := make([]*span.Span, n)
	for i := range out {
		out[i] = &span.Span{SpanID: span.SpanID{byte(i), byte(i >> 8), 1}}
	}
	return out
}

// The queue hands out full batches at once, a partial one after the flush
// interval, everything in order, and drops what finds it full.
func TestSpanQueueBatches(t *testing.T) {
	q := newSpanQueue(10, 4)
	in := spansN(12)
	for i, s := range in {
		if ok := q.push(s); ok != (i < 10) {
			t.Fatalf("push %d: %v with the queue at %d of 10", i, ok, q.len())
		}
	}
	var got []*span.Span
	for range 2 {
		start := time.Now()
		b, ok := q.take(nil, time.Hour)
		if !ok || len(b) != 4 || time.Since(start) > time.Second {
			t.Fatalf("full batch: %d spans, ok %v, after %s", len(b), ok, time.Since(start))
		}
		got = append(got, b...)
	}
	if q.len() != 2 {
		t.Fatalf("left %d, want 2", q.len())
	}
	start := time.Now()
	b, ok := q.take(nil, 50*time.Millisecond)
	if waited := time.Since(start); !ok || len(b) != 2 || waited < 50*time.Millisecond {
		t.Fatalf("partial batch: %d spans, ok %v, after %s (flush 50ms)", len(b), ok, waited)
	}
	got = append(got, b...)
	for i, s := range got {
		if s != in[i] {
			t.Fatalf("span %d out of order", i)
		}
	}
	q.push(in[10])
	q.close()
	if q.push(in[11]) {
		t.Fatal("push after close accepted")
	}
	if b, ok := q.take(nil, time.Hour); !ok || len(b) != 1 || b[0] != in[10] {
		t.Fatalf("after close: %d spans, ok %v; want the one left", len(b), ok)
	}
	if b, ok := q.take(nil, time.Hour); ok || len(b) != 0 {
		t.Fatalf("closed and empty: %d spans, ok %v", len(b), ok)
	}
}

// A sleeping export loop is woken per batch, not per span: at the first
// span (to start the flush timer) and when the batch is full.
func TestSpanQueueWakesPerBatch(t *testing.T) {
	const batch, batches = 64, 20
	q := newSpanQueue(batch*batches, batch)
	var wg sync.WaitGroup
	got := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			b, ok := q.take(nil, time.Hour)
			got += len(b)
			if !ok {
				return
			}
		}
	}()
	for _, s := range spansN(batch * batches) {
		q.push(s)
		// Spans arrive apart, as a request's do: the loop has time to
		// go back to sleep between them.
		time.Sleep(50 * time.Microsecond)
	}
	q.close()
	wg.Wait()
	if got != batch*batches {
		t.Fatalf("took %d spans, want %d", got, batch*batches)
	}
	if w := q.wakes.Load(); w > 2*batches+2 {
		t.Errorf("%d wake-ups for %d batches of %d spans, want at most 2 per batch", w, batches, batch)
	}
}
