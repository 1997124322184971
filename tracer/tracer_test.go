package tracer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/span"
)

// An idle tracer does not tick: its linker flusher waits for a span, and
// a span recorded then is still released when its wait is over, and
// exported FlushInterval later.
func TestTracerIdleWakes(t *testing.T) {
	exp := newMemExporter()
	l := NewLinker(owners(func(netip.AddrPort) (int, bool) { return procA.PID, true })) // a watched caller whose call never comes
	l.Window = 150 * time.Millisecond
	tr := New(exp, Options{Linker: l, FlushInterval: 50 * time.Millisecond})
	defer tr.Shutdown(context.Background())
	idle := func() bool { tr.linkMu.Lock(); defer tr.linkMu.Unlock(); return tr.linkIdle }
	waitIdle := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(time.Second); !idle(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the linker flusher never went idle", what)
			}
		}
	}
	waitIdle("at start")
	for round := range 2 {
		recorded := time.Now()
		tr.Record(&event.HTTPServer{Process: procB, Start: recorded, End: recorded.Add(time.Millisecond), Method: "GET", Path: "/x",
			Status: 200, ProtoMajor: 1, RemoteAddr: "127.0.0.1:5000",
			SpanContext: event.SpanContext{TraceID: event.TraceID{byte(round + 1)}, SpanID: event.SpanID{1}}})
		for deadline := time.Now().Add(2 * time.Second); len(exp.GetSpans()) == 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: span not exported 2 s after it was recorded", round)
			}
		}
		spans := exp.GetSpans()
		if waited := time.Since(recorded); waited < l.Window {
			t.Errorf("round %d: exported after %s, before its caller's window (%s) was over", round, waited, l.Window)
		}
		if len(spans) != 1 || spans[0].TraceID[0] != byte(round+1) {
			t.Errorf("round %d: exported %d spans, trace %v", round, len(spans), spans[0].TraceID)
		}
		exp.Reset()
		waitIdle("after a span")
	}
	// Both waited for a caller on this node that never showed: counted.
	if st := tr.Stats(); st.Unlinked != 2 || st.Linked != 0 {
		t.Errorf("unlinked %d, linked %d; want 2 and 0", st.Unlinked, st.Linked)
	}
}

// rejecting is an exporter whose collector rejects some spans of each batch.
type rejecting struct{ n int64 }

func (r rejecting) ExportSpans(_ context.Context, spans []*span.Span) error {
	return &RejectedError{Rejected: r.n, Sent: len(spans), Reason: "too old"}
}
func (rejecting) Shutdown(context.Context) error { return nil }

// A partial success loses only the rejected spans; a plain error the batch.
func TestExportCountsRejected(t *testing.T) {
	for _, c := range []struct {
		rejected           int64
		exported, failures uint64
	}{{2, 3, 2}, {5, 0, 5}} {
		tr := New(rejecting{c.rejected}, Options{BatchSize: 5, FlushInterval: time.Hour})
		for i := range 5 {
			tr.Record(&event.HTTPServer{Process: procA, Start: t0, End: t0.Add(time.Millisecond), Method: "GET", Path: "/x",
				Status: 200, ProtoMajor: 1, SpanContext: event.SpanContext{TraceID: event.TraceID{byte(i + 1)}, SpanID: event.SpanID{1}}})
		}
		tr.Shutdown(context.Background())
		if st := tr.Stats(); st.Exported != c.exported || st.Failed != c.failures {
			t.Errorf("%d of 5 rejected: exported %d, failed %d; want %d and %d", c.rejected, st.Exported, st.Failed, c.exported, c.failures)
		}
	}
}

// hanging is an exporter whose collector never answers: an export ends
// only when its context does or Shutdown aborts it.
type hanging struct {
	started chan struct{}
	abort   chan struct{}
}

func (h *hanging) ExportSpans(ctx context.Context, _ []*span.Span) error {
	select {
	case h.started <- struct{}{}:
	default:
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-h.abort:
		return context.Canceled
	}
}
func (h *hanging) Shutdown(context.Context) error { close(h.abort); return nil }

// Out of time at shutdown, the batch being sent and the spans still queued
// are counted as unexported, not lost silently nor counted as failures.
func TestShutdownCountsUnexported(t *testing.T) {
	h := &hanging{started: make(chan struct{}, 1), abort: make(chan struct{})}
	tr := New(h, Options{BatchSize: 4, FlushInterval: time.Hour, ExportTimeout: time.Hour})
	record := func(i int) {
		tr.Record(&event.HTTPServer{Process: procA, Start: t0, End: t0.Add(time.Millisecond), Method: "GET", Path: "/x",
			Status: 200, ProtoMajor: 1, SpanContext: event.SpanContext{TraceID: event.TraceID{byte(i + 1)}, SpanID: event.SpanID{1}}})
	}
	for i := range 4 { // a full batch: sent at once, and hangs
		record(i)
	}
	<-h.started
	for i := range 3 {
		record(4 + i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := tr.Shutdown(ctx)
	var se *ShutdownError
	if !errors.As(err, &se) || se.Unexported != 7 {
		t.Fatalf("Shutdown: %v, want 7 spans unexported", err)
	}
	if st := tr.Stats(); st.Unexported != 7 || st.Failed != 0 || st.Exported != 0 || st.Queued != 0 {
		t.Errorf("stats %+v, want 7 unexported and nothing else", st)
	}
}

// The export timeout is honoured as given, above the 10 s default too.
func TestExportTimeoutAsGiven(t *testing.T) {
	var got time.Duration
	exp := exportFunc(func(ctx context.Context) {
		d, _ := ctx.Deadline()
		got = time.Until(d)
	})
	tr := New(exp, Options{ExportTimeout: time.Minute, BatchSize: 1})
	tr.Record(&event.HTTPServer{Process: procA, Start: t0, End: t0.Add(time.Millisecond), Method: "GET", Path: "/x",
		Status: 200, ProtoMajor: 1, SpanContext: event.SpanContext{TraceID: event.TraceID{1}, SpanID: event.SpanID{1}}})
	tr.Shutdown(context.Background())
	if got < 59*time.Second || got > time.Minute {
		t.Errorf("export had %s, want a minute", got)
	}
}

type exportFunc func(ctx context.Context)

func (f exportFunc) ExportSpans(ctx context.Context, _ []*span.Span) error {
	f(ctx)
	return nil
}
func (exportFunc) Shutdown(context.Context) error { return nil }

// A root whose owner lookup is still queued when the tracer shuts down is
// still linked under its caller's call, here already: the agent of a slow
// node reads its last calls' events only as it is stopped. The worker is
// kept busy with another lookup until Shutdown begins; it may then take
// the queued one or stop first, so several rounds give both a chance.
func TestShutdownAnswersQueuedLookups(t *testing.T) {
	for round := range 12 {
		exp := newMemExporter() // keeps its spans when shut down
		var tr *Tracer
		entered := make(chan struct{})
		first := true
		l := NewLinker(func(qs []Lookup) []Caller {
			if first {
				first = false
				close(entered)
				<-tr.stop // busy until Shutdown begins
			}
			return fixedOwner(map[uint16]int{5000: procA.PID})(qs)
		})
		tr = New(exp, Options{Linker: l, FlushInterval: 10 * time.Millisecond})
		now := time.Now()
		// From off the node (the lookup says so): keeps the worker.
		tr.Record(&event.HTTPServer{Process: procB, Start: now, End: now.Add(time.Millisecond), Method: "GET", Path: "/other",
			Status: 200, ProtoMajor: 1, RemoteAddr: "10.0.0.1:6000",
			SpanContext: event.SpanContext{TraceID: event.TraceID{8}, SpanID: event.SpanID{0x80}}})
		<-entered
		// B's root (trace 9) waits for its lookup, queued; A's call
		// (trace 1) that contains it comes.
		tr.Record(&event.HTTPServer{Process: procB, Start: now.Add(2 * time.Millisecond), End: now.Add(5 * time.Millisecond), Method: "GET", Path: "/x",
			Status: 200, ProtoMajor: 1, RemoteAddr: "127.0.0.1:5000",
			SpanContext: event.SpanContext{TraceID: event.TraceID{9}, SpanID: event.SpanID{0x90}}})
		tr.Record(via(&event.HTTPClient{Process: procA, Start: now.Add(time.Millisecond), End: now.Add(6 * time.Millisecond), Method: "GET",
			Scheme: "http", Host: "b:80", Path: "/x", Status: 200, Link: event.LinkContext,
			SpanContext: event.SpanContext{TraceID: event.TraceID{1}, SpanID: event.SpanID{0x11}, Parent: event.SpanID{0x10},
				Traceparent: event.TraceparentValid, Flags: 1}}, 5000))
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range exp.GetSpans() {
			got = append(got, fmt.Sprintf("%s %s<-%s", s.TraceID, s.SpanID, s.Parent))
		}
		sort.Strings(got)
		want := []string{
			"01000000000000000000000000000000 1100000000000000<-1000000000000000",
			"01000000000000000000000000000000 9000000000000000<-1100000000000000",
			"08000000000000000000000000000000 8000000000000000<-0000000000000000",
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: spans exported\n%s\nwant\n%s", round, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if st := tr.Stats(); st.Linked != 1 {
			t.Errorf("round %d: linked %d, want 1", round, st.Linked)
		}
	}
}
