// Package tracer turns probe events into OpenTelemetry spans and exports them.
package tracer

import (
	"net"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/golens/golens/buildinfo"
	"github.com/golens/golens/probes/event"
)

// Scope is the instrumentation scope of the spans golens builds.
var Scope = instrumentation.Scope{Name: "github.com/golens/golens", Version: buildinfo.Version}

// splitHostPort splits "host:port", tolerating a missing port.
func splitHostPort(hp string) (string, int) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return strings.Trim(hp, "[]"), 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// HTTPServerSpan builds the server span of one request.
func HTTPServerSpan(e *event.HTTPServer) tracetest.SpanStub {
	method := event.NormalMethod(e.Method)
	route := e.RouteTemplate()
	name := method
	if route != "" {
		name = method + " " + route
	}
	attrs := make([]attribute.KeyValue, 0, 12) // every attribute below fits: one allocation
	attrs = append(attrs,
		attribute.String("http.request.method", method),
		attribute.String("url.path", e.Path),
	)
	if e.Status != 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", e.Status))
	}
	if method != e.Method {
		attrs = append(attrs, attribute.String("http.request.method_original", e.Method))
	}
	if route != "" {
		attrs = append(attrs, attribute.String("http.route", route))
	}
	if host, port := splitHostPort(e.Host); host != "" {
		attrs = append(attrs, attribute.String("server.address", host))
		if port != 0 {
			attrs = append(attrs, attribute.Int("server.port", port))
		}
	}
	if addr, port := splitHostPort(e.RemoteAddr); addr != "" {
		attrs = append(attrs, attribute.String("client.address", addr))
		if port != 0 {
			attrs = append(attrs, attribute.Int("client.port", port))
		}
	}
	if v := protocolVersion(e.ProtoMajor, e.ProtoMinor); v != "" {
		attrs = append(attrs, attribute.String("network.protocol.version", v))
	}
	if t := e.ErrorType(); t != "" {
		attrs = append(attrs, attribute.String("error.type", t))
	}
	if e.Traceparent == event.TraceparentMalformed {
		attrs = append(attrs, attribute.Bool("golens.traceparent.malformed", true))
	}
	if len(e.Truncated) > 0 {
		attrs = append(attrs, attribute.StringSlice("golens.truncated", e.Truncated))
	}
	stub := tracetest.SpanStub{
		Name:                 name,
		SpanKind:             trace.SpanKindServer,
		StartTime:            e.Start,
		EndTime:              e.End,
		Attributes:           attrs,
		InstrumentationScope: Scope,
	}
	stub.SpanContext, stub.Parent = spanContexts(e.SpanContext)
	switch {
	case e.Panicked:
		stub.Status = sdktrace.Status{Code: codes.Error, Description: "handler panicked"}
	case e.Failed():
		stub.Status = sdktrace.Status{Code: codes.Error}
	}
	return stub
}

func protocolVersion(major, minor int) string {
	switch {
	case major == 1 && minor == 1:
		return "1.1" // nearly every HTTP/1 request: no allocation
	case major == 1:
		return "1." + strconv.Itoa(minor)
	case major >= 2:
		return strconv.Itoa(major)
	}
	return ""
}

// spanContexts converts probe ids into the span's own and parent contexts.
func spanContexts(sc event.SpanContext) (self, parent trace.SpanContext) {
	self = trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID(sc.TraceID),
		SpanID:     trace.SpanID(sc.SpanID),
		TraceFlags: trace.FlagsSampled,
	})
	if !sc.Parent.IsZero() {
		parent = trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    trace.TraceID(sc.TraceID),
			SpanID:     trace.SpanID(sc.Parent),
			TraceFlags: trace.TraceFlags(sc.Flags),
			Remote:     sc.Traceparent == event.TraceparentValid,
		})
	}
	return self, parent
}

// HTTPClientSpan builds the client span of one outgoing request.
func HTTPClientSpan(e *event.HTTPClient) tracetest.SpanStub {
	method := event.NormalMethod(e.Method)
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", method),
		attribute.String("url.full", e.Scheme+"://"+e.Host+e.Path),
	}
	if method != e.Method {
		attrs = append(attrs, attribute.String("http.request.method_original", e.Method))
	}
	if host, port := splitHostPort(e.Host); host != "" {
		if port == 0 {
			port = defaultPort(e.Scheme)
		}
		attrs = append(attrs, attribute.String("server.address", host))
		if port != 0 {
			attrs = append(attrs, attribute.Int("server.port", port))
		}
	}
	if e.Status != 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", e.Status))
	}
	failed := e.Failed()
	if failed {
		attrs = append(attrs, attribute.String("error.type", e.FailureType()))
	}
	if len(e.Truncated) > 0 {
		attrs = append(attrs, attribute.StringSlice("golens.truncated", e.Truncated))
	}
	attrs = appendLocal(attrs, e.Conn)
	stub := tracetest.SpanStub{
		Name:                 method,
		SpanKind:             trace.SpanKindClient,
		StartTime:            e.Start,
		EndTime:              e.End,
		Attributes:           attrs,
		InstrumentationScope: Scope,
	}
	stub.SpanContext, stub.Parent = spanContexts(e.SpanContext)
	if failed {
		stub.Status = sdktrace.Status{Code: codes.Error}
	}
	return stub
}

func defaultPort(scheme string) int {
	switch scheme {
	case "http":
		return 80
	case "https":
		return 443
	}
	return 0
}

// GRPCSpan builds the span of one RPC, served or made.
func GRPCSpan(e *event.GRPC) tracetest.SpanStub {
	service, method := e.ServiceMethod()
	name := strings.TrimPrefix(e.Method, "/")
	attrs := []attribute.KeyValue{
		attribute.String("rpc.system", "grpc"),
		attribute.String("rpc.service", service),
		attribute.String("rpc.method", method),
	}
	if e.Code >= 0 {
		attrs = append(attrs, attribute.Int("rpc.grpc.status_code", e.Code))
	}
	kind := trace.SpanKindClient
	failed := e.Failed()
	if e.Server {
		kind = trace.SpanKindServer
		if e.Peer.IsValid() {
			attrs = append(attrs, attribute.String("client.address", e.Peer.Addr().String()),
				attribute.Int("client.port", int(e.Peer.Port())))
		}
	} else {
		if host, port := splitHostPort(dialAddress(e.DialTarget)); host != "" {
			attrs = append(attrs, attribute.String("server.address", host))
			if port != 0 {
				attrs = append(attrs, attribute.Int("server.port", port))
			}
		}
		attrs = appendLocal(attrs, e.Conn)
	}
	if e.Cut {
		attrs = append(attrs, attribute.StringSlice("golens.truncated", []string{"method"}))
	}
	stub := tracetest.SpanStub{
		Name:                 name,
		SpanKind:             kind,
		StartTime:            e.Start,
		EndTime:              e.End,
		Attributes:           attrs,
		InstrumentationScope: Scope,
	}
	stub.SpanContext, stub.Parent = spanContexts(e.SpanContext)
	if failed {
		stub.Status = sdktrace.Status{Code: codes.Error, Description: e.CodeName()}
	}
	return stub
}

// dialAddress strips a gRPC target's scheme: "dns:///svc:50051" -> "svc:50051".
func dialAddress(target string) string {
	if i := strings.Index(target, "://"); i >= 0 {
		target = target[i+3:]
		if j := strings.IndexByte(target, '/'); j >= 0 {
			target = target[j+1:]
		}
	}
	return target
}

// appendLocal adds the client's end of the connection a call went out on,
// when the probe read it: the callee's span names the same address as
// its client.address and client.port.
func appendLocal(attrs []attribute.KeyValue, c event.Conn) []attribute.KeyValue {
	if !c.Known() {
		return attrs
	}
	return append(attrs, attribute.String("network.local.address", c.Local.Addr().Unmap().String()),
		attribute.Int("network.local.port", int(c.Local.Port())))
}
