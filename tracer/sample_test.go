package tracer

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/golens/golens/sampler"
	"github.com/golens/golens/span"
)

// testSampling is a sampling stage deciding at probability prob, with the
// names of the spans it keeps, in order.
func testSampling(t *testing.T, prob float64) (*sampling, *[]string) {
	t.Helper()
	strat, err := sampler.Parse([]byte(fmt.Sprintf(`{"default_strategy": {"type": "probabilistic", "param": %g}}`, prob)))
	if err != nil {
		t.Fatal(err)
	}
	kept := new([]string)
	p := newSampling(sampler.New(sampler.Config{}, strat), func(st *span.Span, _ bool) { *kept = append(*kept, st.Name) })
	return p, kept
}

// A kept trace leaves no entry in the decision memory (a later span's
// "sampled" parent flag already says keep), and its late callee is kept.
func TestSamplingKeptTraceNotRemembered(t *testing.T) {
	p, kept := testSampling(t, 1)
	res := span.NewResource("", attribute.String("service.name", "a"))
	start := time.Now()
	for i := range 100 {
		tid := span.TraceID{byte(i), 9}
		p.decide(time.Time{}, []*span.Span{{Name: "A server", TraceID: tid, SpanID: span.SpanID{1}, Flags: span.FlagSampled,
			Resource: res, Start: start, End: start.Add(time.Millisecond)}})
		p.decide(time.Time{}, []*span.Span{{Name: "B server", TraceID: tid, SpanID: span.SpanID{2}, Flags: span.FlagSampled,
			Parent: span.SpanID{1}, ParentFlags: span.FlagSampled, Resource: res, Start: start, End: start.Add(time.Millisecond)}})
	}
	if n := len(p.traces.cur) + len(p.traces.old); n != 0 {
		t.Errorf("%d traces remembered at keep-all, want 0", n)
	}
	if len(*kept) != 200 {
		t.Errorf("kept %d spans, want all 200", len(*kept))
	}
}

// A callee joined to its caller's trace after the caller's spans were
// decided follows that decision, not the "sampled" flag its parent span
// was minted with; an error in it still keeps it.
func TestSamplingLateJoiner(t *testing.T) {
	p, kept := testSampling(t, 0)

	tid := span.TraceID{7}
	res := func(svc string) *span.Resource {
		return span.NewResource("", attribute.String("service.name", svc))
	}
	start := time.Now()
	stub := func(name, svc string, self, parent byte) *span.Span {
		s := &span.Span{Name: name, TraceID: tid, SpanID: span.SpanID{self}, Flags: span.FlagSampled,
			Resource: res(svc), Start: start, End: start.Add(time.Millisecond)}
		if parent != 0 {
			s.Parent, s.ParentFlags = span.SpanID{parent}, span.FlagSampled
		}
		return s
	}
	// A's local trace: its server span and the client call, dropped at p=0.
	p.decide(time.Time{}, []*span.Span{stub("A client", "a", 2, 1), stub("A server", "a", 1, 0)})
	// B's server span, joined under A's client span later.
	p.decide(time.Time{}, []*span.Span{stub("B server", "b", 3, 2)})
	if len(*kept) != 0 {
		t.Errorf("kept %v at p=0, want none: the late callee must follow its trace's decision", *kept)
	}
	// A failing late callee is critical: kept, and with it the rest of
	// its trace, still in the hold.
	failing := stub("B failing", "b", 4, 2)
	failing.Status = span.Error
	p.decide(time.Time{}, []*span.Span{failing})
	sort.Strings(*kept)
	if want := []string{"A client", "A server", "B failing", "B server"}; !slices.Equal(*kept, want) {
		t.Errorf("kept %v, want the whole trace %v", *kept, want)
	}
}
