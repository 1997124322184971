package tracer

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/span"
)

var (
	procA = &event.Process{PID: 100, ServiceName: "a"}
	procB = &event.Process{PID: 200, ServiceName: "b"}
	t0    = time.Unix(1700000000, 0)
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// add is Add followed by the owner lookups it asked for, answered at once
// (the tracer's worker answers them in the background).
func add(l *Linker, ev event.Event, stub *span.Span, now time.Time) []*span.Span {
	out := l.Add(ev, stub, now)
	for {
		select {
		case q := <-l.Lookups():
			out = append(out, l.Resolve(q, l.Owner([]Lookup{q})[0], now)...)
		default:
			return out
		}
	}
}

// settled is what l releases once a match found at now has settled.
func settled(l *Linker, now time.Time) []*span.Span {
	return l.Flush(now.Add(l.Settle), false)
}

// calleeEnd is B's end of every connection in these tests.
var calleeEnd = netip.MustParseAddrPort("127.0.0.1:80")

// owners answers every peer with f; the client end found is the peer's
// connection to calleeEnd.
func owners(f func(netip.AddrPort) (int, bool)) OwnerFunc {
	return func(qs []Lookup) []Caller {
		out := make([]Caller, len(qs))
		for i, q := range qs {
			out[i].PID, out[i].OnNode = f(q.Peer)
			out[i].Conn = Conn{Local: q.Peer, Remote: calleeEnd}
		}
		return out
	}
}

// via says client call e went out on the connection from 127.0.0.1:port
// to calleeEnd.
func via(e *event.HTTPClient, port uint16) *event.HTTPClient {
	e.Conn = event.Conn{Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Remote: calleeEnd}
	return e
}

// fixedOwner says every peer port in m belongs to that pid.
func fixedOwner(m map[uint16]int) OwnerFunc {
	return owners(func(peer netip.AddrPort) (int, bool) {
		pid, ok := m[peer.Port()]
		return pid, ok
	})
}

func server(p *event.Process, trace, self, parent byte, tp event.TraceparentState, remote string, start, end time.Duration) (*event.HTTPServer, *span.Span) {
	e := &event.HTTPServer{Process: p, Start: t0.Add(start), End: t0.Add(end), Method: "GET", Path: "/x", Status: 200, ProtoMajor: 1,
		RemoteAddr:  remote,
		SpanContext: event.SpanContext{TraceID: event.TraceID{trace}, SpanID: event.SpanID{self}, Parent: event.SpanID{parent}, Traceparent: tp}}
	if parent == 0 {
		e.Parent = event.SpanID{}
	}
	s := e.Span()
	return e, &s
}

func client(p *event.Process, trace, self, parent byte, link event.ParentLink, tp event.TraceparentState, start, end time.Duration) (*event.HTTPClient, *span.Span) {
	e := &event.HTTPClient{Process: p, Start: t0.Add(start), End: t0.Add(end), Method: "GET", Scheme: "http", Host: "b:80", Path: "/x", Status: 200, Link: link,
		SpanContext: event.SpanContext{TraceID: event.TraceID{trace}, SpanID: event.SpanID{self}, Parent: event.SpanID{parent}, Traceparent: tp, Flags: 1}}
	s := e.Span()
	return e, &s
}

func ids(s *span.Span) (span.TraceID, span.SpanID, span.SpanID) {
	return s.TraceID, s.SpanID, s.Parent
}

// A (traceparent from outside, trace 1) calls B; B's request started trace 9.
func TestLinkerJoinsCalleeUnderCaller(t *testing.T) {
	l := NewLinker(fixedOwner(map[uint16]int{5000: procA.PID}))
	now := t0
	var out []*span.Span
	// B's own downstream call (child of B's root) finishes first: held.
	ce, cs := client(procB, 9, 0x21, 0x20, event.LinkContext, event.TraceparentNone, ms(3), ms(4))
	if got := add(l, ce, cs, now); len(got) != 0 {
		t.Fatalf("child of an unsettled local root released: %d", len(got))
	}
	// A's client span arrives after B's root: B waits for it.
	be, bs := server(procB, 9, 0x20, 0, event.TraceparentNone, "127.0.0.1:5000", ms(2), ms(5))
	if got := add(l, be, bs, now); len(got) != 0 {
		t.Fatalf("root with a watched caller released before its caller's span: %d", len(got))
	}
	ae, as := client(procA, 1, 0x11, 0x10, event.LinkContext, event.TraceparentValid, ms(1), ms(6))
	out = append(add(l, via(ae, 5000), as, now), settled(l, now)...)
	if len(out) != 3 {
		t.Fatalf("released %d spans, want A's client and B's two", len(out))
	}
	for _, s := range out {
		tr, sp, parent := ids(s)
		if tr != (span.TraceID{1}) {
			t.Errorf("span %s in trace %s, want 01…", sp, tr)
		}
		switch sp {
		case span.SpanID{0x20}:
			if parent != (span.SpanID{0x11}) {
				t.Errorf("B's root parent %s, want A's client span", parent)
			}
		case span.SpanID{0x21}:
			if parent != (span.SpanID{0x20}) || s.TraceID != (span.TraceID{1}) {
				t.Errorf("B's child parent %s/%s", s.TraceID, parent)
			}
		}
	}
	if l.Linked != 1 || l.held != 0 {
		t.Errorf("linked %d held %d", l.Linked, l.held)
	}
}

// A -> B -> C, where B joins A's trace before C joins B's call: C lands in
// A's trace (the one B's call is in now), not in the trace B's call began
// in, which no longer exists.
func TestLinkerChainJoinsAfterCallerMoved(t *testing.T) {
	procC := &event.Process{PID: 300, ServiceName: "c"}
	l := NewLinker(fixedOwner(map[uint16]int{5000: procA.PID, 6000: procB.PID}))
	now := t0
	be, bs := server(procB, 9, 0x20, 0, event.TraceparentNone, "127.0.0.1:5000", ms(2), ms(9))
	bce, bcs := client(procB, 9, 0x21, 0x20, event.LinkContext, event.TraceparentNone, ms(3), ms(8))
	add(l, via(bce, 6000), bcs, now)
	add(l, be, bs, now)
	ae, as := client(procA, 1, 0x11, 0x10, event.LinkContext, event.TraceparentValid, ms(1), ms(10))
	out := append(add(l, via(ae, 5000), as, now), settled(l, now)...)
	if len(out) != 3 {
		t.Fatalf("released %d spans, want A's client and B's two", len(out))
	}
	// C's span is read only now.
	now = now.Add(ms(300))
	ce, cs := server(procC, 7, 0x30, 0, event.TraceparentNone, "127.0.0.1:6000", ms(4), ms(7))
	out = append(add(l, ce, cs, now), settled(l, now)...)
	if len(out) != 1 {
		t.Fatalf("released %d spans, want C's", len(out))
	}
	if tr, _, parent := ids(out[0]); tr != (span.TraceID{1}) || parent != (span.SpanID{0x21}) || out[0].TraceID != (span.TraceID{1}) {
		t.Errorf("C in trace %s under %s/%s, want trace 01… under B's call 21…", tr, out[0].TraceID, parent)
	}
	if l.Linked != 2 {
		t.Errorf("linked %d, want 2", l.Linked)
	}
}

// A root whose peer is not a watched process is released at once; one that
// waits in vain is released after the window, unchanged.
func TestLinkerReleases(t *testing.T) {
	l := NewLinker(fixedOwner(map[uint16]int{5000: procA.PID}))
	e, s := server(procB, 7, 0x70, 0, event.TraceparentNone, "10.0.0.9:4444", 0, ms(1))
	if got := add(l, e, s, t0); len(got) != 1 {
		t.Fatalf("foreign caller: released %d, want 1", len(got))
	}
	e, s = server(procB, 8, 0x80, 0, event.TraceparentNone, "127.0.0.1:5000", 0, ms(1))
	if got := add(l, e, s, t0); len(got) != 0 {
		t.Fatal("released before the window")
	}
	if got := l.Flush(t0.Add(ms(500)), false); len(got) != 0 {
		t.Fatal("released inside the window")
	}
	got := l.Flush(t0.Add(2*time.Second), false)
	if len(got) != 1 || got[0].TraceID != (span.TraceID{8}) || got[0].HasParent() {
		t.Fatalf("after the window: %d spans", len(got))
	}
	if l.Unmatched != 1 {
		t.Errorf("unmatched %d", l.Unmatched)
	}
	// Valid traceparent: never held.
	e, s = server(procB, 6, 0x60, 0x61, event.TraceparentValid, "127.0.0.1:5000", 0, ms(1))
	if got := add(l, e, s, t0); len(got) != 1 {
		t.Fatal("span with an outside trace held")
	}
}

// Two concurrent calls from A to B: each B root goes under the call that
// contains it.
func TestLinkerConcurrentCalls(t *testing.T) {
	l := NewLinker(fixedOwner(map[uint16]int{5001: procA.PID, 5002: procA.PID}))
	b1, s1 := server(procB, 0x31, 0x31, 0, event.TraceparentNone, "127.0.0.1:5001", ms(2), ms(10))
	b2, s2 := server(procB, 0x32, 0x32, 0, event.TraceparentNone, "127.0.0.1:5002", ms(6), ms(14))
	add(l, b1, s1, t0)
	add(l, b2, s2, t0)
	c1, cs1 := client(procA, 1, 0x41, 0x40, event.LinkContext, event.TraceparentValid, ms(1), ms(11))
	c2, cs2 := client(procA, 2, 0x42, 0x40, event.LinkContext, event.TraceparentValid, ms(5), ms(15))
	out := append(add(l, via(c1, 5001), cs1, t0), add(l, via(c2, 5002), cs2, t0)...)
	out = append(out, settled(l, t0)...)
	if len(out) != 4 {
		t.Fatalf("released %d, want 4", len(out))
	}
	if s1.Parent != (span.SpanID{0x41}) || s2.Parent != (span.SpanID{0x42}) {
		t.Errorf("parents %s %s, want 41 and 42", s1.Parent, s2.Parent)
	}
}

func TestLinkerBounded(t *testing.T) {
	l := NewLinker(nil)
	l.MaxHeld = 5
	released := 0
	for i := 0; i < 20; i++ {
		e, s := client(procB, byte(i+1), byte(i+1), 0x99, event.LinkContext, event.TraceparentNone, 0, ms(1))
		released += len(add(l, e, s, t0))
	}
	if l.held > 5 || released != 15 || l.Overflow != 15 {
		t.Errorf("held %d released %d overflow %d", l.held, released, l.Overflow)
	}
	released += len(l.Flush(t0.Add(time.Minute), false))
	if released != 20 || l.held != 0 {
		t.Errorf("after MaxHold: released %d held %d", released, l.held)
	}
}

// closedEnd answers every lookup with a closed client end (TIME_WAIT) in
// a namespace whose watched processes are neighbours.
func closedEnd(neighbours ...int) OwnerFunc {
	return func(qs []Lookup) []Caller {
		out := make([]Caller, len(qs))
		for i, q := range qs {
			out[i] = Caller{OnNode: true, Conn: Conn{NetNS: 7, Local: q.Peer, Remote: calleeEnd}, Neighbours: neighbours}
		}
		return out
	}
}

// The caller closed its connection before the lookup: the socket is still
// on this node (TIME_WAIT) without an owner. Only a call of a process that
// could have held it, here or within the settle time, claims the root;
// otherwise it goes out then, uncounted: most likely an unwatched client.
func TestLinkerOwnerGone(t *testing.T) {
	// A's call came first, A could have held the socket: linked.
	l := NewLinker(closedEnd(procA.PID, procB.PID))
	ae, as := client(procA, 1, 0x11, 0x10, event.LinkContext, event.TraceparentValid, ms(1), ms(6))
	add(l, via(ae, 5000), as, t0)
	be, bs := server(procB, 9, 0x20, 0, event.TraceparentNone, "127.0.0.1:5000", ms(2), ms(5))
	add(l, be, bs, t0)
	if got := settled(l, t0); len(got) != 1 || bs.Parent != (span.SpanID{0x11}) {
		t.Fatalf("released %d, root parent %s", len(got), bs.Parent)
	}

	// A's call comes after, within the settle time: linked too.
	l = NewLinker(closedEnd(procA.PID, procB.PID))
	be, bs = server(procB, 9, 0x20, 0, event.TraceparentNone, "127.0.0.1:5000", ms(2), ms(5))
	if got := add(l, be, bs, t0); len(got) != 0 {
		t.Fatalf("closed client end: released %d before the settle time", len(got))
	}
	ae, as = client(procA, 1, 0x11, 0x10, event.LinkContext, event.TraceparentValid, ms(1), ms(6))
	add(l, via(ae, 5000), as, t0.Add(ms(100)))
	if got := settled(l, t0.Add(ms(100))); len(got) != 1 || bs.Parent != (span.SpanID{0x11}) {
		t.Fatalf("call after the root: released %d, root parent %s", len(got), bs.Parent)
	}

	// A's call fits, but A is not in the socket's namespace: not linked.
	l = NewLinker(closedEnd(procB.PID))
	ae, as = client(procA, 1, 0x11, 0x10, event.LinkContext, event.TraceparentValid, ms(1), ms(6))
	add(l, via(ae, 5000), as, t0)
	be, bs = server(procB, 9, 0x20, 0, event.TraceparentNone, "127.0.0.1:5000", ms(2), ms(5))
	got := append(add(l, be, bs, t0), settled(l, t0)...)
	if len(got) != 1 || bs.HasParent() {
		t.Fatalf("other namespace: released %d, root parent %s", len(got), bs.Parent)
	}

	// No call within the settle time: out then, counted nowhere.
	l = NewLinker(closedEnd(procA.PID))
	be, bs = server(procB, 9, 0x20, 0, event.TraceparentNone, "127.0.0.1:5000", ms(2), ms(5))
	add(l, be, bs, t0)
	if got := settled(l, t0); len(got) != 1 || bs.HasParent() {
		t.Fatalf("no evidence: released %d, root parent %s", len(got), bs.Parent)
	}
	if l.Unmatched+l.LookupBusy+l.Ambiguous != 0 || l.held != 0 {
		t.Errorf("counted: unmatched %d busy %d ambiguous %d, held %d", l.Unmatched, l.LookupBusy, l.Ambiguous, l.held)
	}
	// ... but when A's call comes after all, the lost link is counted once.
	ae, as = client(procA, 1, 0x11, 0x10, event.LinkContext, event.TraceparentValid, ms(1), ms(6))
	add(l, via(ae, 5000), as, t0.Add(l.Settle+ms(100)))
	add(l, via(ae, 5000), as, t0.Add(l.Settle+ms(150)))
	if l.Unmatched != 1 {
		t.Errorf("a watched caller's call after the root went: unmatched %d, want 1", l.Unmatched)
	}
	// Long after the window, a call no longer names an old root.
	l = NewLinker(closedEnd(procA.PID))
	be, bs = server(procB, 9, 0x20, 0, event.TraceparentNone, "127.0.0.1:5000", ms(2), ms(5))
	add(l, be, bs, t0)
	settled(l, t0)
	ae, as = client(procA, 1, 0x11, 0x10, event.LinkContext, event.TraceparentValid, ms(1), ms(6))
	add(l, via(ae, 5000), as, t0.Add(l.Settle+l.Window+ms(100)))
	if l.Unmatched != 0 {
		t.Errorf("a call past the window: unmatched %d, want 0", l.Unmatched)
	}
}

// A connection found open, then closed at a later lookup: still its
// holder's, whose call may come after.
func TestLinkerRemembersHolder(t *testing.T) {
	conn := Conn{NetNS: 7, Local: netip.MustParseAddrPort("127.0.0.1:5000"), Remote: netip.MustParseAddrPort("127.0.0.1:80")}
	l := NewLinker(nil)
	l.Owner = func([]Lookup) []Caller { return nil }
	q := Lookup{Callee: procB.PID, Peer: conn.Local}
	l.Resolve(q, Caller{PID: procA.PID, OnNode: true, Conn: conn}, t0)
	later := t0.Add(10 * time.Second) // past the owner cache
	be, bs := server(procB, 9, 0x20, 0, event.TraceparentNone, "127.0.0.1:5000", ms(2), ms(5))
	l.Add(be, bs, later)
	<-l.Lookups()
	if got := l.Resolve(q, Caller{OnNode: true, Conn: conn}, later); len(got) != 0 {
		t.Fatalf("root released (%d) before its caller's call came", len(got))
	}
	ae, as := client(procA, 1, 0x11, 0x10, event.LinkContext, event.TraceparentValid, ms(1), ms(6))
	if got := append(l.Add(via(ae, 5000), as, later), settled(l, later)...); len(got) != 2 || bs.Parent != (span.SpanID{0x11}) {
		t.Fatalf("released %d, root parent %s", len(got), bs.Parent)
	}
}

// Two calls of A with the same method and path on one connection (two
// HTTP/2 streams) both contain B's request, or one call contains two of
// B's requests on its connection: the linker does not guess.
func TestLinkerAmbiguous(t *testing.T) {
	// Two calls, one callee inside both: the calls came first.
	l := NewLinker(fixedOwner(map[uint16]int{5001: procA.PID, 5002: procA.PID}))
	c1, cs1 := client(procA, 1, 0x41, 0x40, event.LinkContext, event.TraceparentValid, ms(1), ms(20))
	c2, cs2 := client(procA, 2, 0x42, 0x40, event.LinkContext, event.TraceparentValid, ms(2), ms(21))
	add(l, via(c1, 5001), cs1, t0)
	add(l, via(c2, 5001), cs2, t0)
	b1, s1 := server(procB, 0x31, 0x31, 0, event.TraceparentNone, "127.0.0.1:5001", ms(3), ms(10))
	if got := add(l, b1, s1, t0); len(got) != 1 || s1.HasParent() || l.Ambiguous != 1 {
		t.Fatalf("callee in two calls: released %d, parent %s, ambiguous %d", len(got), s1.Parent, l.Ambiguous)
	}

	// One call, two callees inside it, both waiting: neither is linked.
	l = NewLinker(fixedOwner(map[uint16]int{5001: procA.PID, 5002: procA.PID}))
	b1, s1 = server(procB, 0x31, 0x31, 0, event.TraceparentNone, "127.0.0.1:5001", ms(3), ms(10))
	b2, s2 := server(procB, 0x32, 0x32, 0, event.TraceparentNone, "127.0.0.1:5001", ms(4), ms(11))
	add(l, b1, s1, t0)
	add(l, b2, s2, t0)
	c1, cs1 = client(procA, 1, 0x41, 0x40, event.LinkContext, event.TraceparentValid, ms(1), ms(20))
	if got := add(l, via(c1, 5001), cs1, t0); len(got) != 3 || s1.HasParent() || s2.HasParent() || l.Ambiguous != 2 {
		t.Fatalf("two callees in one call: released %d, parents %s %s, ambiguous %d", len(got), s1.Parent, s2.Parent, l.Ambiguous)
	}

	// A callee inside a call already taken and a new one: not linked.
	l = NewLinker(fixedOwner(map[uint16]int{5001: procA.PID, 5002: procA.PID}))
	b1, s1 = server(procB, 0x31, 0x31, 0, event.TraceparentNone, "127.0.0.1:5001", ms(3), ms(10))
	add(l, b1, s1, t0)
	c1, cs1 = client(procA, 1, 0x41, 0x40, event.LinkContext, event.TraceparentValid, ms(1), ms(20))
	add(l, via(c1, 5001), cs1, t0)
	settled(l, t0) // s1 joins c1
	b2, s2 = server(procB, 0x32, 0x32, 0, event.TraceparentNone, "127.0.0.1:5001", ms(4), ms(11))
	if got := add(l, b2, s2, t0); len(got) != 1 || s2.HasParent() || l.Ambiguous != 1 {
		t.Fatalf("callee in a taken call: released %d, parent %s, ambiguous %d", len(got), s2.Parent, l.Ambiguous)
	}

	// The one call containing a callee reserved, then a rival call: the
	// reservation is undone, no parent.
	l = NewLinker(fixedOwner(map[uint16]int{5001: procA.PID}))
	b1, s1 = server(procB, 0x31, 0x31, 0, event.TraceparentNone, "127.0.0.1:5001", ms(3), ms(10))
	add(l, b1, s1, t0)
	c1, cs1 = client(procA, 1, 0x41, 0x40, event.LinkContext, event.TraceparentValid, ms(1), ms(11))
	add(l, via(c1, 5001), cs1, t0)
	c2, cs2 = client(procA, 2, 0x42, 0x40, event.LinkContext, event.TraceparentValid, ms(2), ms(12))
	got := append(add(l, via(c2, 5001), cs2, t0.Add(ms(100))), settled(l, t0.Add(ms(100)))...)
	if len(got) != 2 || s1.HasParent() || l.Ambiguous != 1 || l.Linked != 0 {
		t.Fatalf("rival within the settle time: released %d, parent %s, ambiguous %d, linked %d", len(got), s1.Parent, l.Ambiguous, l.Linked)
	}
}

// Owner lookups run off the caller of Add: a root whose peer is unknown
// waits for the answer, one lookup per peer however many roots wait for
// it; past LookupQueue peers in flight, and for an answer that comes after
// the window, the root goes out unlinked and counted.
func TestLinkerLookupsAsync(t *testing.T) {
	l := NewLinker(fixedOwner(map[uint16]int{5000: procA.PID}))
	be, bs := server(procB, 9, 0x20, 0, event.TraceparentNone, "127.0.0.1:5000", ms(2), ms(5))
	if got := l.Add(be, bs, t0); len(got) != 0 {
		t.Fatal("root released before its owner lookup")
	}
	b2, s2 := server(procB, 10, 0x30, 0, event.TraceparentNone, "127.0.0.1:5000", ms(7), ms(8))
	l.Add(b2, s2, t0)
	if n := len(l.Lookups()); n != 1 {
		t.Fatalf("%d lookups queued for one peer, want 1", n)
	}
	// The caller's span comes while the lookup is in flight.
	ae, as := client(procA, 1, 0x11, 0x10, event.LinkContext, event.TraceparentValid, ms(1), ms(6))
	if got := l.Add(via(ae, 5000), as, t0); len(got) != 1 {
		t.Fatalf("client span: released %d, want 1", len(got))
	}
	<-l.Lookups()
	peer := netip.MustParseAddrPort("127.0.0.1:5000")
	got := append(l.Resolve(Lookup{procB.PID, peer}, Caller{PID: procA.PID, OnNode: true, Conn: Conn{Local: peer, Remote: calleeEnd}}, t0), settled(l, t0)...)
	if len(got) != 1 || bs.Parent != (span.SpanID{0x11}) {
		t.Fatalf("after the answer: released %d, root parent %s", len(got), bs.Parent)
	}
	// The second root found no call that contains it: it waits, then goes.
	if got := l.Flush(t0.Add(2*time.Second), false); len(got) != 1 || l.Unmatched != 1 {
		t.Fatalf("after the window: released %d, unmatched %d", len(got), l.Unmatched)
	}

	// A full queue: roots of further peers go out at once, counted.
	l = NewLinker(fixedOwner(nil))
	released := 0
	for i := 0; i < LookupQueue+3; i++ {
		e, s := server(procB, byte(i), byte(i), 0, event.TraceparentNone, fmt.Sprintf("127.0.0.1:%d", 6000+i), 0, ms(1))
		e.TraceID[1] = byte(i>>8) + 1 // a trace of its own each
		released += len(l.Add(e, s, t0))
	}
	if released != 3 || l.LookupBusy != 3 {
		t.Fatalf("queue full: released %d, busy %d; want 3 and 3", released, l.LookupBusy)
	}
	// No answer within the window: released, counted.
	got = l.Flush(t0.Add(2*time.Second), false)
	if len(got) != LookupQueue || l.LookupBusy != 3+LookupQueue || l.held != 0 {
		t.Fatalf("lookups too slow: released %d, busy %d, held %d", len(got), l.LookupBusy, l.held)
	}
	// A late answer only fills the cache.
	if got := l.Resolve(Lookup{procB.PID, netip.MustParseAddrPort("127.0.0.1:6000")}, Caller{}, t0.Add(2*time.Second)); len(got) != 0 {
		t.Fatalf("late answer released %d", len(got))
	}
}

// step is one event of a pairing case: a root server span of B (peer
// 127.0.0.1:port) or a client call (pid, out on 127.0.0.1:port to remote,
// or on an unknown connection with port 0), read in the order given.
type step struct {
	root       bool
	id         byte // the span id (a root's trace id too)
	pid        int
	port       uint16
	remote     string // a call's far end; calleeEnd when empty
	start, end int    // ms
	at         int    // ms after t0 the event is read (what was due is flushed first)
}

func rootAt(id byte, port uint16, start, end int) step {
	return step{root: true, id: id, port: port, start: start, end: end}
}

func callOn(id byte, port uint16, start, end int) step {
	return step{id: id, pid: procA.PID, port: port, start: start, end: end}
}

// Pairing is by connection: every callee gets exactly the call that went
// out on its connection, whatever else overlaps in time with the same
// method and path; when more than one call fits (streams sharing a
// connection) or the call's connection is unknown, none is chosen, and
// the reason is counted.
func TestLinkerPairsByConnection(t *testing.T) {
	other := &event.Process{PID: 300, ServiceName: "c"}
	cases := []struct {
		name  string
		steps []step
		want  map[byte]byte // root -> parent span id, 0 for none
		// counters after everything settled
		linked, ambiguous, noConn, unmatched uint64
	}{{
		name: "4 identical concurrent calls, roots first",
		steps: []step{
			rootAt(0x31, 5001, 3, 10), rootAt(0x32, 5002, 4, 11), rootAt(0x33, 5003, 5, 12), rootAt(0x34, 5004, 6, 13),
			callOn(0x44, 5004, 1, 20), callOn(0x41, 5001, 1, 21), callOn(0x43, 5003, 2, 22), callOn(0x42, 5002, 2, 23),
		},
		want:   map[byte]byte{0x31: 0x41, 0x32: 0x42, 0x33: 0x43, 0x34: 0x44},
		linked: 4,
	}, {
		name: "4 identical concurrent calls, calls first",
		steps: []step{
			callOn(0x42, 5002, 1, 20), callOn(0x41, 5001, 1, 21), callOn(0x44, 5004, 2, 22), callOn(0x43, 5003, 2, 23),
			rootAt(0x33, 5003, 5, 12), rootAt(0x31, 5001, 3, 10), rootAt(0x34, 5004, 6, 13), rootAt(0x32, 5002, 4, 11),
		},
		want:   map[byte]byte{0x31: 0x41, 0x32: 0x42, 0x33: 0x43, 0x34: 0x44},
		linked: 4,
	}, {
		name: "a handler fanning out 3 identical calls, interleaved",
		steps: []step{
			rootAt(0x32, 5002, 3, 9), callOn(0x43, 5003, 1, 14), rootAt(0x31, 5001, 2, 10),
			callOn(0x42, 5002, 1, 11), rootAt(0x33, 5003, 2, 12), callOn(0x41, 5001, 1, 13),
		},
		want:   map[byte]byte{0x31: 0x41, 0x32: 0x42, 0x33: 0x43},
		linked: 3,
	}, {
		name: "keep-alive: two calls in turn on one connection",
		steps: []step{
			rootAt(0x31, 5001, 2, 5), callOn(0x41, 5001, 1, 6),
			rootAt(0x32, 5001, 8, 11), callOn(0x42, 5001, 7, 12),
		},
		want:   map[byte]byte{0x31: 0x41, 0x32: 0x42},
		linked: 2,
	}, {
		name: "two streams on one connection, both contain the root",
		steps: []step{
			rootAt(0x31, 5001, 3, 10), callOn(0x41, 5001, 1, 20), callOn(0x42, 5001, 2, 21),
		},
		want:      map[byte]byte{0x31: 0},
		ambiguous: 1,
	}, {
		name: "two streams on one connection, calls first",
		steps: []step{
			callOn(0x41, 5001, 1, 20), callOn(0x42, 5001, 2, 21), rootAt(0x31, 5001, 3, 10),
		},
		want:      map[byte]byte{0x31: 0},
		ambiguous: 1,
	}, {
		name: "two streams, two roots, one call contains both",
		steps: []step{
			rootAt(0x31, 5001, 3, 10), rootAt(0x32, 5001, 4, 11), callOn(0x41, 5001, 1, 20),
		},
		want:      map[byte]byte{0x31: 0, 0x32: 0},
		ambiguous: 2,
	}, {
		name:   "the caller's call without a connection",
		steps:  []step{rootAt(0x31, 5001, 3, 10), callOn(0x41, 0, 1, 20)},
		want:   map[byte]byte{0x31: 0},
		noConn: 1,
	}, {
		name:   "the caller's call without a connection, read first",
		steps:  []step{callOn(0x41, 0, 1, 20), rootAt(0x31, 5001, 3, 10)},
		want:   map[byte]byte{0x31: 0},
		noConn: 1,
	}, {
		name: "a call without a connection beside the one on it",
		steps: []step{
			rootAt(0x31, 5001, 3, 10), callOn(0x42, 0, 1, 20), callOn(0x41, 5001, 2, 21),
		},
		want:   map[byte]byte{0x31: 0x41},
		linked: 1,
	}, {
		name: "the root's peer port towards another destination",
		steps: []step{
			rootAt(0x31, 5001, 3, 10),
			{id: 0x41, pid: procA.PID, port: 5001, remote: "127.0.0.1:81", start: 1, end: 20},
		},
		want:      map[byte]byte{0x31: 0},
		unmatched: 1,
	}, {
		name: "the same connection named by a process not holding it",
		steps: []step{
			rootAt(0x31, 5001, 3, 10), {id: 0x41, pid: other.PID, port: 5001, start: 1, end: 20},
		},
		want:      map[byte]byte{0x31: 0},
		unmatched: 1,
	}, {
		// A neighbour's identical call fits the root's time and is read
		// first; the root's own call is read after the settle time (a
		// loaded reader): the neighbour's is never taken for it.
		name: "the root's own call read late, a neighbour's first",
		steps: []step{
			rootAt(0x31, 5001, 3, 10), callOn(0x42, 5002, 1, 11),
			{id: 0x41, pid: procA.PID, port: 5001, start: 2, end: 12, at: 600},
		},
		want:   map[byte]byte{0x31: 0x41},
		linked: 1,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLinker(owners(func(netip.AddrPort) (int, bool) { return procA.PID, true }))
			roots := map[byte]*span.Span{}
			for _, st := range tc.steps {
				now := t0.Add(ms(st.at))
				l.Flush(now, false)
				if st.root {
					e, s := server(procB, st.id, st.id, 0, event.TraceparentNone, fmt.Sprintf("127.0.0.1:%d", st.port), ms(st.start), ms(st.end))
					roots[st.id] = s
					add(l, e, s, now)
					continue
				}
				p := procA
				if st.pid == other.PID {
					p = other
				}
				e, s := client(p, 0x01, st.id, 0x40, event.LinkContext, event.TraceparentValid, ms(st.start), ms(st.end))
				if st.port != 0 {
					via(e, st.port)
				}
				if st.remote != "" {
					e.Conn.Remote = netip.MustParseAddrPort(st.remote)
				}
				add(l, e, s, now)
			}
			last := t0.Add(ms(tc.steps[len(tc.steps)-1].at))
			l.Flush(last.Add(l.Settle), false)
			l.Flush(last.Add(2*l.Window), false)
			for id, want := range tc.want {
				s := roots[id]
				if got := s.Parent; got != (span.SpanID{want}) && !(want == 0 && !s.HasParent()) {
					t.Errorf("root %x: parent %s, want %x", id, got, want)
				}
				if want != 0 && s.TraceID != (span.TraceID{0x01}) {
					t.Errorf("root %x in trace %s, want the caller's", id, s.TraceID)
				}
			}
			if l.Linked != tc.linked || l.Ambiguous != tc.ambiguous || l.NoConn != tc.noConn || l.Unmatched != tc.unmatched || l.LookupBusy != 0 {
				t.Errorf("linked %d ambiguous %d no_conn %d unmatched %d busy %d; want %d %d %d %d 0",
					l.Linked, l.Ambiguous, l.NoConn, l.Unmatched, l.LookupBusy, tc.linked, tc.ambiguous, tc.noConn, tc.unmatched)
			}
			if l.held != 0 {
				t.Errorf("%d spans still held", l.held)
			}
		})
	}
}

// A root whose caller's call carries no connection is not held for the
// whole window: it goes out once that call has settled, counted.
func TestLinkerNoConnNotHeld(t *testing.T) {
	l := NewLinker(fixedOwner(map[uint16]int{5001: procA.PID}))
	be, bs := server(procB, 0x31, 0x31, 0, event.TraceparentNone, "127.0.0.1:5001", ms(3), ms(10))
	add(l, be, bs, t0)
	ae, as := client(procA, 1, 0x41, 0x40, event.LinkContext, event.TraceparentValid, ms(1), ms(20))
	add(l, ae, as, t0.Add(ms(10)))
	if got := l.Flush(t0.Add(ms(10)+l.Settle-ms(1)), false); len(got) != 0 {
		t.Fatalf("released %d before the settle time", len(got))
	}
	if got := l.Flush(t0.Add(ms(10)+l.Settle), false); len(got) != 1 || bs.HasParent() || l.NoConn != 1 || l.Unmatched != 0 {
		t.Fatalf("released %d, parent %s, no_conn %d, unmatched %d", len(got), bs.Parent, l.NoConn, l.Unmatched)
	}
	// A closed client end whose possible holder's call has no connection:
	// counted too, where a call-less closed end is not.
	l = NewLinker(closedEnd(procA.PID))
	be, bs = server(procB, 0x31, 0x31, 0, event.TraceparentNone, "127.0.0.1:5001", ms(3), ms(10))
	add(l, be, bs, t0)
	add(l, ae, as, t0)
	if got := settled(l, t0); len(got) != 1 || bs.HasParent() || l.NoConn != 1 {
		t.Fatalf("closed end: released %d, parent %s, no_conn %d", len(got), bs.Parent, l.NoConn)
	}
}

// HTTP/2 streams on one connection: when both probes read the stream id,
// two identical calls each containing both callees are told apart by it,
// in either order of arrival; a side without a stream id pairs by
// connection alone, as before (ambiguous here).
func TestLinkerPairsByStream(t *testing.T) {
	stream := func(e event.Event, id uint32) event.Event {
		switch e := e.(type) {
		case *event.HTTPClient:
			e.Stream = id
		case *event.HTTPServer:
			e.Stream = id
		}
		return e
	}
	for _, callsFirst := range []bool{true, false} {
		l := NewLinker(fixedOwner(map[uint16]int{5001: procA.PID}))
		c1, cs1 := client(procA, 1, 0x41, 0x40, event.LinkContext, event.TraceparentValid, ms(1), ms(20))
		c3, cs3 := client(procA, 2, 0x43, 0x40, event.LinkContext, event.TraceparentValid, ms(2), ms(21))
		b1, s1 := server(procB, 0x31, 0x31, 0, event.TraceparentNone, "127.0.0.1:5001", ms(3), ms(10))
		b3, s3 := server(procB, 0x33, 0x33, 0, event.TraceparentNone, "127.0.0.1:5001", ms(4), ms(11))
		calls := func() {
			add(l, stream(via(c1, 5001), 1), cs1, t0)
			add(l, stream(via(c3, 5001), 3), cs3, t0)
		}
		if callsFirst {
			calls()
		}
		add(l, stream(b3, 3), s3, t0)
		add(l, stream(b1, 1), s1, t0)
		if !callsFirst {
			calls()
		}
		settled(l, t0)
		if _, _, p := ids(s1); p != span.SpanID(event.SpanID{0x41}) {
			t.Errorf("calls first %v: stream 1's callee under %s, want 41…", callsFirst, p)
		}
		if _, _, p := ids(s3); p != span.SpanID(event.SpanID{0x43}) {
			t.Errorf("calls first %v: stream 3's callee under %s, want 43…", callsFirst, p)
		}
		if l.Linked != 2 || l.Ambiguous != 0 {
			t.Errorf("calls first %v: linked %d, ambiguous %d; want 2, 0", callsFirst, l.Linked, l.Ambiguous)
		}
	}

	// The callee's stream unknown: both calls fit it.
	l := NewLinker(fixedOwner(map[uint16]int{5001: procA.PID}))
	c1, cs1 := client(procA, 1, 0x41, 0x40, event.LinkContext, event.TraceparentValid, ms(1), ms(20))
	c3, cs3 := client(procA, 2, 0x43, 0x40, event.LinkContext, event.TraceparentValid, ms(2), ms(21))
	add(l, stream(via(c1, 5001), 1), cs1, t0)
	add(l, stream(via(c3, 5001), 3), cs3, t0)
	b1, s1 := server(procB, 0x31, 0x31, 0, event.TraceparentNone, "127.0.0.1:5001", ms(3), ms(10))
	if got := add(l, b1, s1, t0); len(got) != 1 || s1.HasParent() || l.Ambiguous != 1 {
		t.Fatalf("callee without a stream id: released %d, parent %s, ambiguous %d", len(got), s1.Parent, l.Ambiguous)
	}
}

// The flush of everything at shutdown counts each root it lets go
// unlinked, as its wait's end would have: a watched caller whose call
// never came (no_client_span), a lookup never answered (lookup_busy), a
// caller's call without its connection (no_conn); a match still settling
// joins.
func TestLinkerFlushAllCounts(t *testing.T) {
	l := NewLinker(fixedOwner(map[uint16]int{5000: procA.PID, 5001: procA.PID, 5002: procA.PID, 5003: procA.PID}))
	// Root 1: its caller is watched, its call never came (the call
	// without a connection below ends before it starts).
	e, s := server(procB, 1, 0x10, 0, event.TraceparentNone, "127.0.0.1:5000", ms(5), ms(6))
	add(l, e, s, t0)
	// Root 3: its caller's call came without a connection.
	e, s = server(procB, 3, 0x30, 0, event.TraceparentNone, "127.0.0.1:5002", ms(1), ms(2))
	add(l, e, s, t0)
	ce, cs := client(procA, 7, 0x71, 0x70, event.LinkContext, event.TraceparentValid, 0, ms(3))
	add(l, ce, cs, t0)
	// Root 4: its call came and fits, still settling.
	e, s4 := server(procB, 4, 0x40, 0, event.TraceparentNone, "127.0.0.1:5003", ms(1), ms(2))
	add(l, e, s4, t0)
	ae, as := client(procA, 8, 0x81, 0x80, event.LinkContext, event.TraceparentValid, 0, ms(3))
	add(l, via(ae, 5003), as, t0)
	// Root 2: its lookup is still queued.
	e, s = server(procB, 2, 0x20, 0, event.TraceparentNone, "127.0.0.1:5001", ms(1), ms(2))
	l.Add(e, s, t0)

	got := l.Flush(t0.Add(ms(10)), true)
	if len(got) != 4 || l.held != 0 {
		t.Fatalf("flush of all released %d spans, held %d; want 4 and 0", len(got), l.held)
	}
	if l.Unmatched != 1 || l.LookupBusy != 1 || l.NoConn != 1 || l.Linked != 1 {
		t.Errorf("unmatched %d, lookup busy %d, no conn %d, linked %d; want 1 each", l.Unmatched, l.LookupBusy, l.NoConn, l.Linked)
	}
	if s4.TraceID != (span.TraceID{8}) || s4.Parent != (span.SpanID{0x81}) {
		t.Errorf("settling root: trace %s parent %s, want A's call", s4.TraceID, s4.Parent)
	}
}

// A lookup that finds more than one connection the callee could have
// accepted from its peer names nobody, but its root is counted as
// ambiguous, not let go as a caller from off the node; so is a second
// root answered from the cache.
func TestLinkerAmbiguousOwner(t *testing.T) {
	l := NewLinker(func(qs []Lookup) []Caller { return make([]Caller, len(qs)) })
	e, s := server(procB, 1, 0x10, 0, event.TraceparentNone, "127.0.0.1:5000", ms(1), ms(2))
	if got := add(l, e, s, t0); len(got) != 1 || l.Ambiguous != 0 {
		t.Fatalf("off-node caller: released %d, ambiguous %d; want 1 and 0", len(got), l.Ambiguous)
	}
	l = NewLinker(func(qs []Lookup) []Caller {
		out := make([]Caller, len(qs))
		for i := range out {
			out[i].Ambiguous = true
		}
		return out
	})
	for i := byte(1); i <= 2; i++ {
		e, s := server(procB, i, i<<4, 0, event.TraceparentNone, "127.0.0.1:5000", ms(1), ms(2))
		if got := add(l, e, s, t0); len(got) != 1 || got[0].HasParent() {
			t.Fatalf("root %d: released %d", i, len(got))
		}
	}
	if l.Ambiguous != 2 || l.held != 0 {
		t.Errorf("ambiguous %d, held %d; want 2 and 0", l.Ambiguous, l.held)
	}
}

// Many roots wait on one keep-alive connection at once (each waits Settle
// after its call came); they arrive out of start order (HTTP/2 streams end
// out of order), their calls too: each root is linked under its own call,
// found among the roots that started while the call ran.
func TestLinkerManyRootsOneConnection(t *testing.T) {
	const n = 300
	l := NewLinker(fixedOwner(map[uint16]int{5000: procA.PID}))
	now := t0
	order := make([]int, n)
	for i := range order {
		order[i] = (i * 7919) % n // a fixed shuffle: 7919 is prime to 300
	}
	tid := func(i int, side byte) event.TraceID { return event.TraceID{byte(i), byte(i >> 8), side} }
	sid := func(i int, side byte) event.SpanID { return event.SpanID{byte(i), byte(i >> 8), side} }
	var out []*span.Span
	for _, i := range order {
		e := &event.HTTPServer{Process: procB, Start: t0.Add(ms(10*i + 2)), End: t0.Add(ms(10*i + 5)), Method: "GET", Path: "/x",
			Status: 200, ProtoMajor: 1, RemoteAddr: "127.0.0.1:5000",
			SpanContext: event.SpanContext{TraceID: tid(i, 9), SpanID: sid(i, 9)}}
		s := e.Span()
		out = append(out, add(l, e, &s, now)...)
	}
	if len(out) != 0 {
		t.Fatalf("%d roots released before their callers' spans", len(out))
	}
	for _, i := range order {
		e := &event.HTTPClient{Process: procA, Start: t0.Add(ms(10*i + 1)), End: t0.Add(ms(10*i + 6)), Method: "GET", Scheme: "http",
			Host: "b:80", Path: "/x", Status: 200, Link: event.LinkContext,
			SpanContext: event.SpanContext{TraceID: tid(i, 1), SpanID: sid(i, 1), Parent: sid(i, 2), Traceparent: event.TraceparentValid, Flags: 1}}
		s := e.Span()
		out = append(out, add(l, via(e, 5000), &s, now)...)
	}
	out = append(out, settled(l, now)...)
	roots := 0
	for _, s := range out {
		if s.SpanID[2] != 9 {
			continue
		}
		roots++
		i := int(s.SpanID[0]) | int(s.SpanID[1])<<8
		if s.TraceID != (span.TraceID(tid(i, 1))) || s.Parent != span.SpanID(sid(i, 1)) {
			t.Errorf("root %d: trace %s parent %s, want %s under %s", i, s.TraceID, s.Parent, span.TraceID(tid(i, 1)), span.SpanID(sid(i, 1)))
		}
	}
	if roots != n || l.Linked != n || l.Ambiguous != 0 {
		t.Errorf("%d roots released, %d linked, %d ambiguous; want %d, %d, 0", roots, l.Linked, l.Ambiguous, n, n)
	}
}

// BenchmarkLinkerKeepAlive is one client call and its callee's root per
// iteration on one keep-alive connection, with the roots of the last
// Settle still waiting, as in the bench's chained load.
func BenchmarkLinkerKeepAlive(b *testing.B) {
	l := NewLinker(fixedOwner(map[uint16]int{5000: procA.PID}))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		at := t0.Add(time.Duration(i) * 400 * time.Microsecond) // 2,500 calls/s
		id := event.TraceID{byte(i), byte(i >> 8), byte(i >> 16), 9}
		e := &event.HTTPServer{Process: procB, Start: at.Add(100 * time.Microsecond), End: at.Add(200 * time.Microsecond), Method: "GET",
			Path: "/x", Status: 200, ProtoMajor: 1, RemoteAddr: "127.0.0.1:5000",
			SpanContext: event.SpanContext{TraceID: id, SpanID: event.SpanID{byte(i), byte(i >> 8), byte(i >> 16), 9}}}
		s := e.Span()
		add(l, e, &s, at.Add(300*time.Microsecond))
		id[3] = 1
		c := &event.HTTPClient{Process: procA, Start: at, End: at.Add(300 * time.Microsecond), Method: "GET", Scheme: "http",
			Host: "b:80", Path: "/x", Status: 200, Link: event.LinkContext,
			SpanContext: event.SpanContext{TraceID: id, SpanID: event.SpanID{byte(i), byte(i >> 8), byte(i >> 16), 1}, Traceparent: event.TraceparentValid, Flags: 1}}
		cs := c.Span()
		add(l, via(c, 5000), &cs, at.Add(300*time.Microsecond))
		if i%250 == 0 { // the tracer's flush, every 100 ms
			l.Flush(at, false)
		}
	}
}
