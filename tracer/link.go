package tracer

import (
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/span"
)

// OwnerFunc names, for each lookup in order, the watched process holding
// the client end of the connection the lookup's callee accepted from its
// peer: the process on this node that made the call. A loopback peer is
// looked for only in the callee's own network namespace; another peer
// wherever the exact other end of the connection is. When the client end
// is on this node but closed (TIME_WAIT: the client closed the connection
// before the lookup) its Caller is pid 0, OnNode true, with the watched
// processes that could have held it. Lookups come in batches: one read of
// the socket tables serves them all.
type OwnerFunc func(qs []Lookup) []Caller

// Lookup asks who made the connection a watched server accepted.
type Lookup struct {
	Callee int            // pid of the server that accepted it
	Peer   netip.AddrPort // the client's address as the server saw it
}

// Caller is who made a connection, as an OwnerFunc found it.
type Caller struct {
	PID    int  // the watched process; 0 when unknown
	OnNode bool // the client end is on this node
	// Conn is the client end found, when OnNode: Local is the callee's
	// peer, Remote the callee's end of the connection as the client's
	// network namespace names it. A client span pairs with the callee
	// only when its own connection is exactly this one.
	Conn Conn
	// Neighbours are, for a closed client end, the watched processes
	// that could have held it (those of its network namespace).
	Neighbours []int
	// Ambiguous: more than one connection on this node could be the
	// callee's (PID 0, not OnNode); its root goes out unlinked, counted.
	Ambiguous bool
}

// Conn names the client end of a connection: its network namespace (by
// inode) and its local and remote addresses.
type Conn struct {
	NetNS         uint64
	Local, Remote netip.AddrPort
}

// Linker joins traces of services on this node without touching the wire.
//
// Probes mint a fresh trace id when a server request carries no
// traceparent. When the caller is another watched process on this node,
// the server span is the callee half of the caller's client span: both
// name the same TCP connection. The linker then moves the server span,
// and every span under it, into the caller's trace with the client span
// as parent.
//
// Pairing is by connection, never by a best guess. A client span says
// which connection its request went out on (event.Conn, from the
// caller's side); the callee's server span has its peer, and an owner
// lookup (see Lookups) finds the client end of that connection on this
// node: in the callee's network namespace for a loopback peer, else as
// the exact other end of the callee's socket. A client span fits a root
// when it comes from the process holding that end (or, the end closed,
// one that could have held it), its connection is exactly that end
// (local address the callee's peer, remote address the callee's end),
// it has the root's method and path, and its call contains the root's
// request in time. An HTTP/1.x connection carries one request at a time,
// so one call fits; HTTP/2 and gRPC streams share a connection, so two
// concurrent identical calls on it both fit, and then the root is not
// linked (Ambiguous). A client span whose connection the probe could not
// read is never paired: a root whose caller only had such a call stays
// its own trace and counts in NoConn. Calls are read in the order they
// end, so a rival call may come after the first one that fits: a unique
// match is reserved and joins only once it had no rival for Settle.
//
// Looking up a peer's owner reads the socket tables and the open files of
// the watched processes: milliseconds with thousands of sockets, too slow
// for the event reader. So the linker only asks: a root whose peer is not
// in the cache waits (in its Window) while a worker the tracer runs takes
// the lookups from Lookups, calls Owner for all it has and hands each
// answer to Resolve. One lookup per callee and peer is in flight at a
// time; when LookupQueue already wait for one, the root goes out unlinked
// and counts in LookupBusy, as does a root whose lookup did not answer
// within its Window. The lookup stays even when the caller's span says
// its connection: it alone tells whether a watched process made the
// call (an unwatched caller's root is not held), which end of the
// connection is the callee's, and in which network namespace.
//
// A closed client end (TIME_WAIT) names no process. The root is then
// linked only on evidence that a watched process made the call: an
// earlier lookup found that very connection held by it, or a call on
// that connection of one of the processes that could have held it (its
// Neighbours) fits, here already or within Settle (a call is read after
// its callee's request). Otherwise the caller was most likely not watched
// (a plain curl): the root goes out then as its own trace, uncounted.
//
// Spans of a trace started here are held until its root server span is
// settled: children finish before their root, and the root's caller span
// finishes after it. A root waits for its caller at most Window; spans
// whose root never shows are released after MaxHold. Both are bounded.
type Linker struct {
	Window time.Duration // how long a root waits for its caller's client span
	// Settle is how long a root's one fitting call waits for a rival
	// before the root joins it (another call on the same connection that
	// contains the root makes the match ambiguous), and how long a root
	// whose client end was closed waits for a call of a process that
	// could have held it.
	Settle  time.Duration
	MaxHold time.Duration // how long children wait for their root
	MaxHeld int           // spans held at most; beyond, the oldest trace is released
	// Owner answers the lookups (see Lookups); it runs on the tracer's
	// lookup worker, never on the event reader.
	Owner OwnerFunc

	groups map[event.TraceID]*group
	// Roots waiting for their caller, by the client end of their
	// connection, and client calls seen lately by the connection they
	// used (a root may arrive after its caller's span): a match needs the
	// same connection, so lookups stay small whatever the traffic. A
	// connection's roots are in start order (byStart): a keep-alive
	// connection has hundreds waiting to settle, and a call looks only at
	// those that started while it ran.
	waiting map[event.Conn][]*group
	recent  map[event.Conn][]*clientRef
	// Calls whose connection is unknown, by "METHOD path": never paired,
	// kept only to tell why a root they contain stays unlinked (NoConn);
	// and the waiting roots by "METHOD path", for the same purpose.
	unpaired   map[string][]*clientRef
	waitingReq map[string][]*group
	// trimming: trim is releasing roots; it takes them out of waiting and
	// waitingReq in one pass after, not one by one (each a shift of the
	// connection's list).
	trimming bool
	calls    int              // calls in recent and unpaired, at most maxCalls
	owners   map[Lookup]owner // cache: a keep-alive connection asks once
	// heldBy is who held a client end, as lookups found it open: the
	// evidence for the same connection found closed later.
	heldBy map[Conn]owner
	// Roots waiting for the owner of their peer, by lookup: the lookups
	// in flight, each asked once.
	pending map[Lookup][]*group
	lookups chan Lookup
	held    int
	// gone are roots with a closed client end released as their own
	// trace because no call of a possible holder had come: when one comes
	// later (within Window) and contains it, the lost link is counted
	// after all. Bounded by goneMax.
	gone []goneRoot
	// moved says which trace each joined local trace became, for a call
	// of its that a callee joins later: the call's clientRef still names
	// the trace it began in (a chain A -> B -> C whose B joined A before
	// C joined B). The oldest of movedMax are forgotten first.
	moved      map[event.TraceID]event.TraceID
	movedOrder []event.TraceID

	// Linked counts server spans joined to a caller's trace; Unmatched
	// counts roots whose caller was a watched process but whose client
	// span was not found within Window; Overflow counts forced releases;
	// LookupBusy counts roots released unlinked because their peer's
	// owner could not be looked up in time (the lookup queue was full, or
	// the answer came after the Window); Ambiguous counts roots left
	// unlinked because more than one call could have been theirs, or
	// more than one connection on the node their callee's; NoConn
	// counts roots left unlinked because their caller's call that could
	// have been theirs did not say its connection (or the lookup did not
	// name the client end's addresses).
	Linked, Unmatched, Overflow, LookupBusy, Ambiguous, NoConn uint64
}

// call is what the linker needs of a server request or a client call,
// HTTP or gRPC (method "grpc", path the full gRPC method).
type call struct {
	proc         *event.Process
	method, path string
	start, end   time.Time
	sc           event.SpanContext
	linked       bool       // a client call whose parent was found in-process
	conn         event.Conn // a client call's connection; zero when unknown
	stream       uint32     // the HTTP/2 stream id on that connection; 0 unknown (or HTTP/1.x)
}

type group struct {
	trace    event.TraceID
	spans    []*span.Span
	root     *call
	rootStub *span.Span
	caller   int        // pid the root waits for
	callers  []int      // or, its client end closed, the pids that could have held it
	conn     event.Conn // the client end of the root's connection, while it waits
	req      string     // "METHOD path" of the root, while it waits
	match    *clientRef // the one call found that fits the root
	noConn   bool       // a call of its caller without a connection contains it
	settle   time.Time  // when match joins, or a root without one goes
	lookup   Lookup     // while the root waits for its peer's owner
	created  time.Time
	deadline time.Time
}

type goneRoot struct {
	root    call
	conn    event.Conn
	callers []int
	at      time.Time
}

// goneMax bounds the released closed-end roots remembered.
const goneMax = 1024

// maxCalls bounds the client calls remembered for roots still to come:
// beyond, a call is not kept (a root it would have fitted counts as
// Unmatched).
const maxCalls = 1 << 16

type owner struct {
	pid        int
	ok         bool       // on this node
	ambiguous  bool       // not ok: more than one connection could be it
	conn       event.Conn // the client end found
	neighbours []int      // a closed client end: who could have held it
	expires    time.Time
}

type clientRef struct {
	pid          int
	conn         event.Conn
	stream       uint32
	method, path string
	start, end   time.Time
	sc           event.SpanContext
	seen         time.Time
	used         bool
	by           *group // the root that reserved it, while it settles
}

// LookupQueue is how many peers may wait for an owner lookup.
const LookupQueue = 256

// NewLinker returns a linker with the given caller lookup and defaults:
// a 1 s window, 250 ms settle time, 30 s max hold, 10000 held spans.
func NewLinker(find OwnerFunc) *Linker {
	return &Linker{
		pending:    make(map[Lookup][]*group),
		lookups:    make(chan Lookup, LookupQueue),
		Window:     time.Second,
		Settle:     250 * time.Millisecond,
		MaxHold:    30 * time.Second,
		MaxHeld:    10000,
		Owner:      find,
		groups:     make(map[event.TraceID]*group),
		waiting:    make(map[event.Conn][]*group),
		recent:     make(map[event.Conn][]*clientRef),
		unpaired:   make(map[string][]*clientRef),
		waitingReq: make(map[string][]*group),
		owners:     make(map[Lookup]owner),
		heldBy:     make(map[Conn]owner),
		moved:      make(map[event.TraceID]event.TraceID),
	}
}

// Add takes the span built for ev and returns the spans ready for export
// now (possibly none, possibly spans held earlier).
func (l *Linker) Add(ev event.Event, st *span.Span, now time.Time) []*span.Span {
	lk, ok := ev.(event.Linkable)
	if !ok {
		return []*span.Span{st}
	}
	c := lk.Call()
	e := call{ev.Target(), c.Method, c.Path, c.Start, c.End, c.SpanContext, c.Linked, c.Conn, c.Stream}
	if c.Server {
		return l.addServer(e, c.Peer, st, now)
	}
	return l.addClient(e, st, now)
}

// plain is c with IPv4 addresses as plain IPv4, as the socket tables and
// the probes name them; zero when either end is unknown.
func plain(c event.Conn) event.Conn {
	if !c.Known() {
		return event.Conn{}
	}
	return event.Conn{Local: unmap(c.Local), Remote: unmap(c.Remote)}
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

func (l *Linker) addClient(e call, stub *span.Span, now time.Time) []*span.Span {
	ref := &clientRef{pid: e.proc.PID, conn: plain(e.conn), stream: e.stream, method: e.method, path: e.path, start: e.start, end: e.end, sc: e.sc, seen: now}
	var out []*span.Span
	// A client span of a trace started here waits with its trace.
	if g := l.groups[e.sc.TraceID]; g != nil || (e.linked && e.sc.Traceparent != event.TraceparentValid) {
		l.hold(e.sc.TraceID, stub, now)
	} else {
		out = append(out, stub)
	}
	if !ref.conn.Known() {
		// Never paired: it only tells the roots it contains why they
		// will stay unlinked.
		for _, g := range l.waitingReq[requestKey(e.method, e.path)] {
			if g.awaits(ref.pid) && g.trace != ref.sc.TraceID && contains(*ref, g.root) {
				l.markNoConn(g, now)
			}
		}
		remember(l, l.unpaired, requestKey(e.method, e.path), ref)
		l.lateCall(ref)
		return append(out, l.bound()...)
	}
	// Does a waiting root belong under this call? Only when it is the one
	// root this call fits and this is the one call fitting it: the root
	// reserves the call and joins it once it settled.
	var fit []*group
	ws := l.waiting[ref.conn]
	for i := startingAt(ws, ref.start); i < len(ws) && !ws[i].root.start.After(ref.end); i++ {
		if g := ws[i]; g.awaits(ref.pid) && g.trace != ref.sc.TraceID && fits(*ref, g.conn, g.root) {
			fit = append(fit, g)
		}
	}
	switch {
	case len(fit) > 1:
		ref.used = true
		for _, g := range fit {
			out = append(out, l.ambiguous(g)...)
		}
	case len(fit) == 1 && (fit[0].match != nil || len(l.rivals(fit[0])) > 0):
		ref.used = true
		out = append(out, l.ambiguous(fit[0])...)
	case len(fit) == 1:
		l.reserve(fit[0], ref, now)
	}
	remember(l, l.recent, ref.conn, ref)
	l.lateCall(ref)
	return append(out, l.bound()...)
}

// remember keeps call c for roots still to come, within maxCalls.
func remember[K comparable](l *Linker, m map[K][]*clientRef, k K, c *clientRef) {
	if l.calls >= maxCalls {
		return
	}
	l.calls++
	m[k] = insertByEnd(m[k], c)
}

// markNoConn notes that a call of root g's caller without a connection
// contains g: unless a call that fits comes within Settle, g goes out
// unlinked then, counted in NoConn, instead of waiting its whole Window.
func (l *Linker) markNoConn(g *group, now time.Time) {
	if g.noConn {
		return
	}
	g.noConn = true
	if g.match == nil && (g.settle.IsZero() || g.settle.After(now.Add(l.Settle))) {
		g.settle = now.Add(l.Settle)
	}
}

// lateCall counts a closed-end root released before call c came, when c
// could have been its caller's: that link was lost, so it has a name.
func (l *Linker) lateCall(c *clientRef) {
	for i, r := range l.gone {
		if c.seen.Sub(r.at) > l.Window || !slices.Contains(r.callers, c.pid) {
			continue
		}
		switch {
		case !c.conn.Known() && contains(*c, &r.root):
			l.NoConn++
		case c.conn.Known() && fits(*c, r.conn, &r.root):
			l.Unmatched++
		default:
			continue
		}
		l.gone = slices.Delete(l.gone, i, i+1)
		return
	}
}

func requestKey(method, path string) string { return method + " " + path }

// insertByEnd adds c to calls kept in end order. Calls come about in that
// order (each is read once it ended), so the place is found from the back.
func insertByEnd(calls []*clientRef, c *clientRef) []*clientRef {
	i := len(calls)
	for i > 0 && calls[i-1].end.After(c.end) {
		i--
	}
	return slices.Insert(calls, i, c)
}

func (l *Linker) addServer(e call, remote string, stub *span.Span, now time.Time) []*span.Span {
	if e.sc.Traceparent == event.TraceparentValid {
		// The trace came from outside: nothing here can change it.
		return []*span.Span{stub}
	}
	peer, err := netip.ParseAddrPort(remote)
	q := Lookup{Callee: e.proc.PID, Peer: peer}
	known := l.Owner == nil || err != nil
	var o owner
	if !known {
		o, known = l.owners[q]
		known = known && now.Before(o.expires)
	}
	if known && !o.ok && l.groups[e.sc.TraceID] == nil {
		// Called from off the node, nothing of its trace held: out at
		// once.
		l.offNode(o)
		return []*span.Span{stub}
	}
	g := l.hold(e.sc.TraceID, stub, now)
	// A copy, so that e escapes only for a root held: the spans let go at
	// once cost no allocation for it.
	root := e
	g.root, g.rootStub = &root, stub
	g.deadline = now.Add(l.Window)
	if known {
		return l.place(g, o, now)
	}
	if _, asked := l.pending[q]; !asked {
		select {
		case l.lookups <- q:
		default:
			l.LookupBusy++
			return append(l.release(g), l.bound()...)
		}
	}
	g.lookup = q
	l.pending[q] = append(l.pending[q], g)
	return l.bound()
}

// place settles root group g once its caller is known: released when the
// caller is not on this node; else, when one call that came already fits
// it, reserving that call, or waiting for one until g's deadline. A closed
// client end names no process: the root waits only Settle, for a call of
// a process that could have held it.
func (l *Linker) place(g *group, o owner, now time.Time) []*span.Span {
	if !o.ok {
		l.offNode(o)
		return append(l.release(g), l.bound()...)
	}
	if !o.conn.Known() {
		// The client end's addresses are unknown: nothing can fit.
		l.NoConn++
		return append(l.release(g), l.bound()...)
	}
	g.callers = []int{o.pid}
	if o.pid == 0 {
		g.callers = o.neighbours
		g.settle = now.Add(l.Settle)
	}
	g.conn = o.conn
	fit := l.rivals(g)
	var out []*span.Span
	switch {
	case len(fit) > 1:
		return append(l.ambiguous(g), l.bound()...)
	case len(fit) == 1 && fit[0].used:
		// That call is another root's: one of the two is not its callee.
		if rival := fit[0].by; rival != nil {
			out = l.ambiguous(rival)
		}
		return append(append(out, l.ambiguous(g)...), l.bound()...)
	}
	g.caller = o.pid
	g.req = requestKey(g.root.method, g.root.path)
	l.waiting[g.conn] = byStart(l.waiting[g.conn], g)
	l.waitingReq[g.req] = append(l.waitingReq[g.req], g)
	if len(fit) == 1 {
		l.reserve(g, fit[0], now)
	} else if l.unpairedContains(g) {
		l.markNoConn(g, now)
	}
	return l.bound()
}

// offNode notes a root let go because its lookup named no caller on this
// node: counted when the lookup could not tell which connection was its
// (an unwatched or remote caller is not a loss).
func (l *Linker) offNode(o owner) {
	if o.ambiguous {
		l.Ambiguous++
	}
}

// awaits tells whether waiting root g may be the callee of a call of pid.
func (g *group) awaits(pid int) bool {
	return slices.Contains(g.callers, pid)
}

// reserve makes call c root g's match: g joins it after Settle unless a
// rival call shows up first.
func (l *Linker) reserve(g *group, c *clientRef, now time.Time) {
	c.used, c.by = true, g
	g.match = c
	g.settle = now.Add(l.Settle)
}

// rivals lists the calls seen lately, taken or not, that fit root g: on
// its connection, of a process that may have made it.
func (l *Linker) rivals(g *group) []*clientRef {
	var out []*clientRef
	// Calls are kept in end order: only those ending after the root can
	// contain it, and the root is recent, so those are the last few.
	cs := l.recent[g.conn]
	first := sort.Search(len(cs), func(i int) bool { return !cs[i].end.Before(g.root.end) })
	for _, c := range cs[first:] {
		if g.awaits(c.pid) && fits(*c, g.conn, g.root) {
			out = append(out, c)
		}
	}
	return out
}

// unpairedContains tells whether a call without a connection of a process
// root g may be the callee of contains g.
func (l *Linker) unpairedContains(g *group) bool {
	cs := l.unpaired[g.req]
	first := sort.Search(len(cs), func(i int) bool { return !cs[i].end.Before(g.root.end) })
	for _, c := range cs[first:] {
		if g.awaits(c.pid) && contains(*c, g.root) {
			return true
		}
	}
	return false
}

// ambiguous releases root group g as its own trace: more than one call
// could have been its caller's, and a wrong parent is worse than none.
func (l *Linker) ambiguous(g *group) []*span.Span {
	l.Ambiguous++
	return l.release(g)
}

// ownerTTL bounds how long a peer address is trusted to name the same
// process: a port can be reused by another process after a close.
const ownerTTL = 5 * time.Second

// heldTTL is how long a client end found open is remembered as its
// holder's once closed. It outlives ownerTTL, after which a keep-alive
// connection is looked up again and may be found closed. Linux keeps a
// closed socket in TIME_WAIT for 60 s and does not reuse its address pair
// meanwhile, except between loopback addresses (tcp_tw_reuse), and only
// for a connection that then has an owner of its own when looked up.
const heldTTL = 30 * time.Second

// Lookups delivers the lookups the linker needs; the answer for each goes
// to Resolve.
func (l *Linker) Lookups() <-chan Lookup { return l.lookups }

// Resolve takes the caller of q, as Owner found it, and settles the roots
// that waited for it; it returns the spans ready for export.
func (l *Linker) Resolve(q Lookup, c Caller, now time.Time) []*span.Span {
	if len(l.owners) >= 4096 {
		clear(l.owners)
	}
	if len(l.heldBy) >= 4096 {
		clear(l.heldBy)
	}
	if c.PID != 0 {
		l.heldBy[c.Conn] = owner{pid: c.PID, ok: true, expires: now.Add(heldTTL)}
	} else if h, ok := l.heldBy[c.Conn]; ok && c.OnNode && now.Before(h.expires) {
		// Closed since a lookup found it open: it was that process's.
		c.PID = h.pid
	}
	o := owner{pid: c.PID, ok: c.OnNode, ambiguous: c.Ambiguous && !c.OnNode, neighbours: c.Neighbours, expires: now.Add(ownerTTL),
		conn: plain(event.Conn{Local: c.Conn.Local, Remote: c.Conn.Remote})}
	l.owners[q] = o
	gs := l.pending[q]
	delete(l.pending, q)
	var out []*span.Span
	for _, g := range gs {
		g.lookup = Lookup{}
		out = append(out, l.place(g, o, now)...)
	}
	return out
}

// fits tells whether server request e, whose connection's client end is
// conn, can be the far end of client call c: c went out on exactly that
// connection (and, when both probes read it, on the same HTTP/2 stream),
// with the same method and path, and its call contains the request. Both
// ends are stamped by the same kernel clock, so the nesting needs no
// slack.
func fits(c clientRef, conn event.Conn, e *call) bool {
	if c.stream != 0 && e.stream != 0 && c.stream != e.stream {
		return false
	}
	return conn.Known() && c.conn == conn && contains(c, e)
}

// contains tells whether client call c has server request e's method and
// path and contains it in time.
func contains(c clientRef, e *call) bool {
	return c.method == e.method && c.path == e.path && !e.start.Before(c.start) && !e.end.After(c.end)
}

// join moves group g into the client's trace, under the client span.
func (l *Linker) join(g *group, c clientRef) []*span.Span {
	l.unwait(g)
	if g.match != nil {
		g.match.by = nil
		g.match = nil
	}
	delete(l.groups, g.trace)
	callerTrace := l.currentTrace(c.sc.TraceID)
	l.move(g.trace, callerTrace)
	for _, s := range g.spans {
		s.TraceID = callerTrace
	}
	g.rootStub.Parent, g.rootStub.ParentFlags, g.rootStub.ParentRemote = c.sc.SpanID, c.sc.Flags, false
	l.Linked++
	// If the caller's own trace is still held, the joined spans wait with it.
	if cg := l.groups[callerTrace]; cg != nil {
		cg.spans = append(cg.spans, g.spans...)
		return nil
	}
	l.held -= len(g.spans)
	return g.spans
}

// movedMax bounds the joined traces remembered by move: a callee joins
// within Window of its call, and fewer traces than this join in a Window.
const movedMax = 4096

// move records that local trace from joined trace to.
func (l *Linker) move(from, to event.TraceID) {
	if from == to {
		return
	}
	if _, ok := l.moved[from]; !ok {
		if len(l.movedOrder) >= movedMax {
			delete(l.moved, l.movedOrder[0])
			l.movedOrder = l.movedOrder[1:]
		}
		l.movedOrder = append(l.movedOrder, from)
	}
	l.moved[from] = to
}

// currentTrace is the trace that spans begun in trace id are in now,
// following joins (a chain of n services moves n-2 times at most; the
// bound only guards against a cycle).
func (l *Linker) currentTrace(id event.TraceID) event.TraceID {
	for i := 0; i < 64; i++ {
		next, ok := l.moved[id]
		if !ok || next == id {
			return id
		}
		id = next
	}
	return id
}

func (l *Linker) hold(id event.TraceID, stub *span.Span, now time.Time) *group {
	g := l.groups[id]
	if g == nil {
		g = &group{trace: id, created: now}
		l.groups[id] = g
	}
	g.spans = append(g.spans, stub)
	l.held++
	return g
}

func (l *Linker) release(g *group) []*span.Span {
	l.unwait(g)
	if g.match != nil {
		g.match.by = nil // stays used: it contained a root let go
		g.match = nil
	}
	delete(l.groups, g.trace)
	l.held -= len(g.spans)
	return g.spans
}

func (l *Linker) unwait(g *group) {
	if g.lookup.Peer.IsValid() {
		ps := l.pending[g.lookup]
		for i, p := range ps {
			if p == g {
				ps = append(ps[:i], ps[i+1:]...)
				break
			}
		}
		// The lookup stays in flight; its answer is still cached.
		l.pending[g.lookup] = ps
		g.lookup = Lookup{}
	}
	if g.req == "" {
		return
	}
	if l.trimming {
		g.req = "" // trim compacts the lists
		return
	}
	dropByStart(l.waiting, g.conn, g)
	drop(l.waitingReq, g.req, g)
	g.req = ""
}

// startingAt is the index of the first root in ws, in start order, that
// started at t or later.
func startingAt(ws []*group, t time.Time) int {
	i, _ := slices.BinarySearchFunc(ws, t, func(g *group, t time.Time) int { return g.root.start.Compare(t) })
	return i
}

// byStart inserts root g into ws, kept in start order, after the roots
// that started at the same time: nearly always at the end.
func byStart(ws []*group, g *group) []*group {
	i := len(ws)
	for i > 0 && ws[i-1].root.start.After(g.root.start) {
		i--
	}
	return slices.Insert(ws, i, g)
}

// dropByStart removes root g from the roots under key k, in start order.
func dropByStart[K comparable](m map[K][]*group, k K, g *group) {
	ws := m[k]
	i := startingAt(ws, g.root.start)
	for i < len(ws) && ws[i] != g && ws[i].root.start.Equal(g.root.start) {
		i++
	}
	if i < len(ws) && ws[i] == g {
		setRoots(m, k, slices.Delete(ws, i, i+1))
	}
}

// compact removes the roots gone from every list of m, in one pass.
func compact[K comparable](m map[K][]*group, gone func(*group) bool) {
	for k, ws := range m {
		setRoots(m, k, slices.DeleteFunc(ws, gone))
	}
}

// drop removes root g from the roots waiting under key k.
func drop[K comparable](m map[K][]*group, k K, g *group) {
	ws := m[k]
	if i := slices.Index(ws, g); i >= 0 {
		ws = slices.Delete(ws, i, i+1)
	}
	setRoots(m, k, ws)
}

// setRoots stores ws as the roots under key k, none as no key.
func setRoots[K comparable](m map[K][]*group, k K, ws []*group) {
	if len(ws) == 0 {
		delete(m, k)
	} else {
		m[k] = ws
	}
}

// bound keeps memory bounded on the hot path: past MaxHeld spans, the
// oldest traces go out as they are.
func (l *Linker) bound() []*span.Span {
	var out []*span.Span
	for l.held > l.MaxHeld {
		var oldest *group
		for _, g := range l.groups {
			if oldest == nil || g.created.Before(oldest.created) {
				oldest = g
			}
		}
		l.Overflow++
		out = append(out, l.release(oldest)...)
	}
	return out
}

// trim releases what waited too long and forgets old client calls; the
// tracer calls it every 100 ms through Flush.
func (l *Linker) trim(now time.Time) []*span.Span {
	var out []*span.Span
	l.trimming = true
	for _, ws := range l.waiting {
		for _, g := range slices.Clone(ws) {
			switch {
			case g.match != nil && !now.Before(g.settle):
				out = append(out, l.join(g, *g.match)...)
			case g.match == nil && g.noConn && !now.Before(g.settle):
				// Its caller's call came, but without its connection:
				// it cannot be paired, and that has a name.
				l.NoConn++
				out = append(out, l.release(g)...)
			case g.match == nil && g.caller == 0 && !now.Before(g.settle):
				// Closed client end, no call of its possible holders:
				// most likely a client golens does not watch. Should
				// such a call come after all, lateCall counts it.
				if len(l.gone) >= goneMax {
					l.gone = l.gone[1:]
				}
				l.gone = append(l.gone, goneRoot{root: *g.root, conn: g.conn, callers: g.callers, at: now})
				out = append(out, l.release(g)...)
			case g.match == nil && now.After(g.deadline):
				l.Unmatched++
				out = append(out, l.release(g)...)
			}
		}
	}
	l.trimming = false
	unwaited := func(g *group) bool { return g.req == "" }
	compact(l.waiting, unwaited)
	compact(l.waitingReq, unwaited)
	for _, gs := range l.pending {
		for _, g := range slices.Clone(gs) {
			if now.After(g.deadline) {
				l.LookupBusy++
				out = append(out, l.release(g)...)
			}
		}
	}
	for _, g := range l.groups {
		if g.root == nil && now.Sub(g.created) > l.MaxHold {
			out = append(out, l.release(g)...)
		}
	}
	for len(l.gone) > 0 && now.Sub(l.gone[0].at) > l.Window {
		l.gone = l.gone[1:]
	}
	l.calls = forget(l.recent, now, l.Window) + forget(l.unpaired, now, l.Window)
	return append(out, l.bound()...)
}

// forget drops the calls seen more than window ago and returns how many
// are left.
func forget[K comparable](m map[K][]*clientRef, now time.Time, window time.Duration) int {
	n := 0
	for k, cs := range m {
		keep := cs[:0]
		for _, c := range cs {
			if now.Sub(c.seen) <= window {
				keep = append(keep, c)
			}
		}
		clear(cs[len(keep):])
		if len(keep) == 0 {
			delete(m, k)
		} else {
			m[k] = keep
		}
		n += len(keep)
	}
	return n
}

// Empty tells whether the linker holds nothing and remembers no call: its
// Flush has nothing to do until the next Add.
func (l *Linker) Empty() bool {
	return len(l.groups) == 0 && len(l.recent) == 0 && len(l.unpaired) == 0
}

// Flush releases what is due at now; with all set, everything held. A
// flush of all comes last, when every event is read: a match joins
// (nothing can rival it any more), and a root that goes out unlinked is
// counted as its wait's end would have counted it.
func (l *Linker) Flush(now time.Time, all bool) []*span.Span {
	if !all {
		return l.trim(now)
	}
	var out []*span.Span
	for _, g := range l.groups {
		switch {
		case g.match != nil:
			out = append(out, l.join(g, *g.match)...)
			continue
		case g.root == nil:
			// Children whose root never came: nothing to link.
		case g.lookup.Peer.IsValid():
			l.LookupBusy++ // its peer's owner never answered
		case g.noConn:
			l.NoConn++
		case g.req != "" && g.caller != 0:
			l.Unmatched++ // its watched caller's call never came
		}
		// A closed client end without a call of its possible holders
		// stays uncounted, as in trim: most likely an unwatched client.
		out = append(out, l.release(g)...)
	}
	return out
}
