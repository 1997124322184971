package event

import "time"

// The questions the stages after the reader ask of an event. Each kind
// answers the ones that concern it, so a stage asks through the interface
// and never switches over event kinds; adding a kind adds its answers
// here and touches no stage.

// Served is an event that may be a request its service served: the
// sampler's view of the service's health (how long, and whether it
// failed by the one rule of its kind) counts every one, sampled or not.
type Served interface {
	Event
	// Served reports the request's duration and failure; ok is false
	// when the event is not a served request (a gRPC call made).
	Served() (d time.Duration, failed, ok bool)
}

// Served implements Served.
func (e *HTTPServer) Served() (time.Duration, bool, bool) {
	return e.End.Sub(e.Start), e.Failed(), true
}

// Served implements Served: only the server side of an RPC.
func (e *GRPC) Served() (time.Duration, bool, bool) {
	return e.End.Sub(e.Start), e.Failed(), e.Server
}

// Call is what the same-node linker matches a caller's client span and
// its callee's server span on.
type Call struct {
	Server       bool
	Method, Path string // "grpc" and the full method for an RPC
	Start, End   time.Time
	SpanContext
	// Linked says a client call found its parent span in-process.
	Linked bool
	// Conn is the connection a client call went out on; zero for a
	// server (its caller is found from Peer) or when unknown.
	Conn Conn
	// Peer is a served call's caller "ip:port"; "" when unknown.
	Peer string
	// Stream is the HTTP/2 stream id on the connection; 0 for HTTP/1.x
	// or when unknown.
	Stream uint32
}

// Linkable is an event the linker can place: a call made or served.
type Linkable interface {
	Event
	Call() Call
}

// Call implements Linkable.
func (e *HTTPServer) Call() Call {
	return Call{Server: true, Method: e.Method, Path: e.Path, Start: e.Start, End: e.End, SpanContext: e.SpanContext,
		Peer: e.RemoteAddr, Stream: e.Stream}
}

// Call implements Linkable.
func (e *HTTPClient) Call() Call {
	return Call{Method: e.Method, Path: e.Path, Start: e.Start, End: e.End, SpanContext: e.SpanContext,
		Linked: e.Link != LinkNone, Conn: e.Conn, Stream: e.Stream}
}

// Call implements Linkable.
func (e *GRPC) Call() Call {
	c := Call{Server: e.Server, Method: "grpc", Path: e.Method, Start: e.Start, End: e.End, SpanContext: e.SpanContext,
		Stream: e.Stream}
	if !e.Server {
		c.Linked, c.Conn = e.Linked, e.Conn
	} else if e.Peer.IsValid() {
		c.Peer = e.Peer.String()
	}
	return c
}

// Stopper is an event that stopped its process's world: the tracer notes
// the stops a garbage collection made, so a span they overlap says for
// how long it was stopped.
type Stopper interface {
	Event
	// GCStop reports the stop's window; ok is false when the stop was
	// not a garbage collection's.
	GCStop() (start, end time.Time, ok bool)
}

// GCStop implements Stopper.
func (e *Pause) GCStop() (time.Time, time.Time, bool) { return e.Start, e.End, e.Reason.GC() }
