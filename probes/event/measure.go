package event

import (
	"net"
	"time"
)

// Instrument names the go_app_ metric family an event counts in.
type Instrument uint8

// The instruments. A new event kind that serves or makes HTTP or gRPC
// calls (another library) reports into the same families.
const (
	NoInstrument       Instrument = iota
	HTTPServerRequests            // go_app_http_server_*
	HTTPClientRequests            // go_app_http_client_*
	GRPCServerCalls               // go_app_grpc_server_*
	GRPCClientCalls               // go_app_grpc_client_*
	GCPauses                      // go_app_gc_*, go_app_goroutines_*
)

// Measure is what one event adds to the go_app_ metrics: the instrument,
// and the raw label values the metrics package caps, normalises and names.
type Measure struct {
	Instrument Instrument
	Duration   time.Duration
	// Method is the normal HTTP method (see NormalMethod), or the full
	// gRPC method "/pkg.Service/Method".
	Method string
	// Route is a served HTTP request's route template; "" when unknown,
	// and Path is then what the route label is made from.
	Route, Path string
	// Host is the host an HTTP client call went to, without its port.
	Host string
	// Status is the HTTP status, 0 when unknown; NoAnswer says the call
	// ended without a usable answer (a handler panic, a transport error),
	// whatever the status.
	Status   int
	NoAnswer bool
	// Code is a gRPC call's status code name.
	Code string
	// For a GC pause: CycleDone says it ended a cycle (mark termination);
	// HeapMarked and GoroutinesIssued are as in Pause.
	CycleDone                    bool
	HeapMarked, GoroutinesIssued uint64
}

// Measured is an event the metrics count.
type Measured interface {
	Event
	Measure() Measure
}

// Measure implements Measured.
func (e *HTTPServer) Measure() Measure {
	return Measure{Instrument: HTTPServerRequests, Duration: e.End.Sub(e.Start), Method: NormalMethod(e.Method),
		Route: e.RouteTemplate(), Path: e.Path, Status: e.Status, NoAnswer: e.Panicked}
}

// Measure implements Measured.
func (e *HTTPClient) Measure() Measure {
	host, _, err := net.SplitHostPort(e.Host)
	if err != nil {
		host = e.Host
	}
	return Measure{Instrument: HTTPClientRequests, Duration: e.End.Sub(e.Start), Method: NormalMethod(e.Method),
		Host: host, Status: e.Status, NoAnswer: e.Err}
}

// Measure implements Measured.
func (e *GRPC) Measure() Measure {
	in := GRPCServerCalls
	if !e.Server {
		in = GRPCClientCalls
	}
	return Measure{Instrument: in, Duration: e.End.Sub(e.Start), Method: e.Method, Code: e.CodeName()}
}

// Measure implements Measured: only a garbage collection's pauses count.
func (e *Pause) Measure() Measure {
	if !e.Reason.GC() {
		return Measure{}
	}
	return Measure{Instrument: GCPauses, Duration: e.End.Sub(e.Start), CycleDone: e.Reason == PauseGCMarkTermination,
		HeapMarked: e.HeapMarked, GoroutinesIssued: e.GoroutinesIssued}
}
