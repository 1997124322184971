// Package event holds the decoded events the probes deliver: plain Go values
// with no eBPF in them, so the span builder and the metrics can be tested
// without a kernel.
package event

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/golens/golens/span"
)

// Event is one decoded observation from a probe.
type Event interface {
	// Target is the process the event came from.
	Target() *Process
}

// Process describes an instrumented process; events share one per target.
type Process struct {
	PID         int
	ServiceName string
	ExeName     string // base name of the executable
	ExePath     string
	GoVersion   string // e.g. "go1.26.8"
	// Resource are further resource attributes, e.g. k8s.pod.name for a
	// process in a Kubernetes pod.
	Resource map[string]string
}

// TraceparentState tells what the probe made of an incoming traceparent.
type TraceparentState uint8

// The states of an incoming traceparent, mirroring enum tp_state in C.
const (
	TraceparentNone      TraceparentState = 0
	TraceparentValid     TraceparentState = 1
	TraceparentMalformed TraceparentState = 2
)

// TraceID is a W3C trace id, the span model's.
type TraceID = span.TraceID

// SpanID is a W3C span (parent) id, the span model's.
type SpanID = span.SpanID

// SpanContext are the ids a probe minted or received for one span.
type SpanContext struct {
	TraceID     TraceID
	SpanID      SpanID
	Parent      SpanID // zero for a root span
	Flags       byte   // W3C trace flags; bit 0 is "sampled"
	Traceparent TraceparentState
}

// HTTPServer is one request served by net/http.
type HTTPServer struct {
	Process    *Process
	Start, End time.Time
	SpanContext
	Method     string
	Path       string
	Route      string // ServeMux pattern (Go 1.23+), empty when unknown
	Host       string // Host header or URL host as the server saw it
	RemoteAddr string // client "ip:port"
	Status     int    // response status (an implicit 200 included); 0 when unknown
	ProtoMajor int
	ProtoMinor int
	// Panicked says the handler panicked and net/http recovered it: the
	// request ended there (a panic the handler recovered itself does not
	// count). Status is then what the client saw: 0 unless the header
	// block had been sent before the panic.
	Panicked  bool
	Truncated []string // names of fields cut to fit the probe's buffers
	// Stream is the request's HTTP/2 stream id; 0 for HTTP/1.x or when
	// unknown.
	Stream uint32
}

// Target implements Event.
func (e *HTTPServer) Target() *Process { return e.Process }

// Failed tells whether the request is an error on the server's side: a
// 5xx, or a handler that panicked. A 4xx is the client's failure. This is
// the one rule: the span's status, and the sampler's view of the
// service's health, both ask it.
func (e *HTTPServer) Failed() bool { return e.Panicked || e.Status >= 500 }

// ErrorType is the span's error.type: "panic" for a handler that
// panicked, else the status code ("503") of a failed request, as the
// semantic conventions ask when no other type is known; "" when the
// request did not fail.
func (e *HTTPServer) ErrorType() string {
	switch {
	case e.Panicked:
		return "panic"
	case e.Failed():
		return strconv.Itoa(e.Status)
	}
	return ""
}

// RouteTemplate is the path template of the ServeMux pattern that matched
// ("[METHOD ][HOST]/PATH"): "GET example.com/items/{id}" gives "/items/{id}".
// Empty when the pattern is unknown.
func (e *HTTPServer) RouteTemplate() string {
	p := e.Route
	if i := strings.IndexByte(p, ' '); i >= 0 {
		p = strings.TrimLeft(p[i+1:], " \t")
	}
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[i:]
	}
	return ""
}

// knownMethods are the HTTP methods the semantic conventions name.
var knownMethods = map[string]bool{
	"CONNECT": true, "DELETE": true, "GET": true, "HEAD": true, "OPTIONS": true,
	"PATCH": true, "POST": true, "PUT": true, "TRACE": true, "QUERY": true,
}

// NormalMethod returns the method as span names, attributes and labels
// carry it: itself when it is a known method, "_OTHER" otherwise, so a
// client sending junk methods cannot create unbounded series.
func NormalMethod(m string) string {
	if knownMethods[m] {
		return m
	}
	return "_OTHER"
}

// ParentLink says how a client span found its parent in-process.
type ParentLink uint8

// The ways a client span is linked to the server span it serves, mirroring
// enum parent_link in C.
const (
	LinkNone      ParentLink = 0 // a root: no server span was found
	LinkContext   ParentLink = 1 // through the request's context.Context chain
	LinkGoroutine ParentLink = 2 // through goroutine ancestry
)

// String names the link for attributes and logs.
func (l ParentLink) String() string {
	switch l {
	case LinkContext:
		return "context"
	case LinkGoroutine:
		return "goroutine"
	}
	return "none"
}

// HTTPClient is one request sent through net/http's Transport.
type HTTPClient struct {
	Process    *Process
	Start, End time.Time
	SpanContext
	Link      ParentLink
	Method    string
	Scheme    string // "http", "https"
	Host      string // URL host, "name:port" or "name"
	Path      string
	Status    int    // response status; 0 when no response came back
	Err       bool   // the transport returned an error
	ErrorType string // the error's Go type when known ("*net.OpError"), else "_OTHER"
	Truncated []string
	// Conn is the TCP connection the request went out on, as the caller's
	// network namespace names it; zero when the probe could not read it.
	Conn Conn
	// Stream is the request's HTTP/2 stream id on Conn; 0 for HTTP/1.x
	// or when unknown.
	Stream uint32
}

// Target implements Event.
func (e *HTTPClient) Target() *Process { return e.Process }

// Failed tells whether the call is an error on the caller's side: the
// transport returned an error, or the response is a 4xx or 5xx (the call
// did not get what it asked for).
func (e *HTTPClient) Failed() bool { return e.Err || e.Status >= 400 }

// FailureType is the span's error.type: the transport error's type, else
// the status code of a 4xx or 5xx; "" when the call did not fail.
func (e *HTTPClient) FailureType() string {
	switch {
	case e.Err:
		return e.ErrorType
	case e.Failed():
		return strconv.Itoa(e.Status)
	}
	return ""
}

// Conn is one TCP connection seen from one of its ends: Local is that
// end's address, Remote the other's. IPv4 addresses are plain IPv4 (never
// IPv4-mapped IPv6), so a connection compares equal from both probes.
type Conn struct {
	Local, Remote netip.AddrPort
}

// Known reports whether both ends were read.
func (c Conn) Known() bool { return c.Local.IsValid() && c.Remote.IsValid() }

// PauseReason is the runtime's stwReason for a stop-the-world pause.
type PauseReason uint32

// The GC reasons; other values are pauses for other causes (ReadMemStats,
// GOMAXPROCS, ...), the same in Go 1.21 to 1.26.
const (
	PauseGCMarkTermination  PauseReason = 1
	PauseGCSweepTermination PauseReason = 2
)

// GC tells whether the pause belongs to a garbage collection.
func (r PauseReason) GC() bool {
	return r == PauseGCMarkTermination || r == PauseGCSweepTermination
}

// Pause is one stop-the-world pause of a target.
type Pause struct {
	Process    *Process
	Start, End time.Time
	Reason     PauseReason
	// HeapMarked is the live heap the last finished GC cycle marked, in
	// bytes; 0 when unknown (no symbol table).
	HeapMarked uint64
	// GoroutinesIssued counts goroutine ids handed out so far (goroutines
	// created since start, plus a small constant); 0 when unknown.
	GoroutinesIssued uint64
}

// Target implements Event.
func (e *Pause) Target() *Process { return e.Process }

// GRPC is one RPC served (Server) or made by google.golang.org/grpc.
type GRPC struct {
	Process    *Process
	Start, End time.Time
	SpanContext
	Server     bool
	Method     string         // full method, "/package.Service/Method"
	DialTarget string         // client: the ClientConn's dial target
	Peer       netip.AddrPort // server: the client's address, when known
	Code       int            // gRPC status code; -1 when unknown
	Linked     bool           // client: the parent span was found in-process
	Cut        bool           // the method was cut to fit the probe's buffer
	// Conn is the client's connection (client: local is the client's end);
	// zero when the probe could not read it.
	Conn Conn
	// Stream is the call's HTTP/2 stream id on its connection (both
	// sides); 0 when unknown.
	Stream uint32
}

// Target implements Event.
func (e *GRPC) Target() *Process { return e.Process }

// ServiceMethod splits the RPC's method into its two parts.
func (e *GRPC) ServiceMethod() (service, method string) { return SplitMethod(e.Method) }

// SplitMethod splits a full gRPC method "/pkg.Service/Method" into its
// two parts.
func SplitMethod(full string) (service, method string) {
	m := strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		return m[:i], m[i+1:]
	}
	return m, ""
}

// GRPCCodeNames are the canonical gRPC status code names.
var GRPCCodeNames = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// grpcServerErrors are the codes that make a served RPC an error, as the
// OpenTelemetry gRPC conventions list them: UNKNOWN, DEADLINE_EXCEEDED,
// UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS. The others are the
// caller's doing.
var grpcServerErrors = map[int]bool{2: true, 4: true, 12: true, 13: true, 14: true, 15: true}

// Failed tells whether the RPC is an error on its side: for a client,
// every code but OK; for a server, the codes grpcServerErrors lists.
// An unknown code (-1: the probe could not read the status) or one out
// of range is an error on both sides: grpc-go itself maps a status it
// cannot classify to UNKNOWN, which is an error for servers too, and the
// probe only reads a code where a status or error was present.
func (e *GRPC) Failed() bool {
	if e.Code < 0 || e.Code >= len(GRPCCodeNames) {
		return true
	}
	if !e.Server {
		return e.Code != 0
	}
	return grpcServerErrors[e.Code]
}

// CodeName names the status code, "UNKNOWN_CODE" when it is not one.
func (e *GRPC) CodeName() string {
	if e.Code >= 0 && e.Code < len(GRPCCodeNames) {
		return GRPCCodeNames[e.Code]
	}
	return "UNKNOWN_CODE"
}
