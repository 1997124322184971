package event

import (
	"net"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"

	"github.com/golens/golens/span"
)

// Spanner is an event that makes a span: it answers with the span's
// ids, name, kind, times, status and attributes. Resource and scope are
// the tracer's to set.
type Spanner interface {
	Event
	Span() span.Span
}

// splitHostPort splits "host:port", tolerating a missing port.
func splitHostPort(hp string) (string, int) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return strings.Trim(hp, "[]"), 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// ids fills the span's own and parent ids from what the probe minted or
// received. The span itself is always "sampled": the sampler decides
// later and writes what it decided in the trace state.
func (sc SpanContext) ids(s *span.Span) {
	s.TraceID, s.SpanID, s.Flags = sc.TraceID, sc.SpanID, span.FlagSampled
	if !sc.Parent.IsZero() {
		s.Parent, s.ParentFlags = sc.Parent, sc.Flags
		s.ParentRemote = sc.Traceparent == TraceparentValid
	}
}

// Span is the server span of the request. Its attributes are the event's
// (Source): rendered when the span is encoded, not kept built while the
// span waits for its trace and its export.
func (e *HTTPServer) Span() span.Span {
	method := NormalMethod(e.Method)
	name := method
	if route := e.RouteTemplate(); route != "" {
		name = method + " " + route
	}
	s := span.Span{Name: name, Kind: span.KindServer, Start: e.Start, End: e.End, Source: e}
	e.SpanContext.ids(&s)
	switch {
	case e.Panicked:
		s.Status, s.StatusMessage = span.Error, "handler panicked"
	case e.Failed():
		s.Status = span.Error
	}
	return s
}

// AppendAttrs appends the server span's attributes to dst.
func (e *HTTPServer) AppendAttrs(dst []attribute.KeyValue) []attribute.KeyValue {
	method := NormalMethod(e.Method)
	dst = append(dst,
		attribute.String("http.request.method", method),
		attribute.String("url.path", e.Path),
	)
	if e.Status != 0 {
		dst = append(dst, attribute.Int("http.response.status_code", e.Status))
	}
	if method != e.Method {
		dst = append(dst, attribute.String("http.request.method_original", e.Method))
	}
	if route := e.RouteTemplate(); route != "" {
		dst = append(dst, attribute.String("http.route", route))
	}
	if host, port := splitHostPort(e.Host); host != "" {
		dst = append(dst, attribute.String("server.address", host))
		if port != 0 {
			dst = append(dst, attribute.Int("server.port", port))
		}
	}
	if addr, port := splitHostPort(e.RemoteAddr); addr != "" {
		dst = append(dst, attribute.String("client.address", addr))
		if port != 0 {
			dst = append(dst, attribute.Int("client.port", port))
		}
	}
	if v := protocolVersion(e.ProtoMajor, e.ProtoMinor); v != "" {
		dst = append(dst, attribute.String("network.protocol.version", v))
	}
	if t := e.ErrorType(); t != "" {
		dst = append(dst, attribute.String("error.type", t))
	}
	if e.Traceparent == TraceparentMalformed {
		dst = append(dst, attribute.Bool("golens.traceparent.malformed", true))
	}
	if len(e.Truncated) > 0 {
		dst = append(dst, attribute.StringSlice("golens.truncated", e.Truncated))
	}
	return dst
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

// Span is the client span of the outgoing request; its attributes are the
// event's, as the server span's are.
func (e *HTTPClient) Span() span.Span {
	s := span.Span{Name: NormalMethod(e.Method), Kind: span.KindClient, Start: e.Start, End: e.End, Source: e}
	e.SpanContext.ids(&s)
	if e.Failed() {
		s.Status = span.Error
	}
	return s
}

// AppendAttrs appends the client span's attributes to dst.
func (e *HTTPClient) AppendAttrs(dst []attribute.KeyValue) []attribute.KeyValue {
	method := NormalMethod(e.Method)
	dst = append(dst,
		attribute.String("http.request.method", method),
		attribute.String("url.full", e.Scheme+"://"+e.Host+e.Path),
	)
	if method != e.Method {
		dst = append(dst, attribute.String("http.request.method_original", e.Method))
	}
	if host, port := splitHostPort(e.Host); host != "" {
		if port == 0 {
			port = defaultPort(e.Scheme)
		}
		dst = append(dst, attribute.String("server.address", host))
		if port != 0 {
			dst = append(dst, attribute.Int("server.port", port))
		}
	}
	if e.Status != 0 {
		dst = append(dst, attribute.Int("http.response.status_code", e.Status))
	}
	if e.Failed() {
		dst = append(dst, attribute.String("error.type", e.FailureType()))
	}
	if len(e.Truncated) > 0 {
		dst = append(dst, attribute.StringSlice("golens.truncated", e.Truncated))
	}
	return appendLocal(dst, e.Conn)
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

// Span is the span of the RPC, served or made; its attributes are the
// event's, as the HTTP spans' are.
func (e *GRPC) Span() span.Span {
	kind := span.KindClient
	if e.Server {
		kind = span.KindServer
	}
	s := span.Span{Name: strings.TrimPrefix(e.Method, "/"), Kind: kind, Start: e.Start, End: e.End, Source: e}
	e.SpanContext.ids(&s)
	if e.Failed() {
		s.Status, s.StatusMessage = span.Error, e.CodeName()
	}
	return s
}

// AppendAttrs appends the RPC span's attributes to dst.
func (e *GRPC) AppendAttrs(dst []attribute.KeyValue) []attribute.KeyValue {
	service, method := e.ServiceMethod()
	dst = append(dst,
		attribute.String("rpc.system", "grpc"),
		attribute.String("rpc.service", service),
		attribute.String("rpc.method", method),
	)
	if e.Code >= 0 {
		dst = append(dst, attribute.Int("rpc.grpc.status_code", e.Code))
	}
	if e.Server {
		if e.Peer.IsValid() {
			dst = append(dst, attribute.String("client.address", e.Peer.Addr().String()),
				attribute.Int("client.port", int(e.Peer.Port())))
		}
	} else {
		if host, port := splitHostPort(dialAddress(e.DialTarget)); host != "" {
			dst = append(dst, attribute.String("server.address", host))
			if port != 0 {
				dst = append(dst, attribute.Int("server.port", port))
			}
		}
		dst = appendLocal(dst, e.Conn)
	}
	if e.Cut {
		dst = append(dst, attribute.StringSlice("golens.truncated", []string{"method"}))
	}
	return dst
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
func appendLocal(attrs []attribute.KeyValue, c Conn) []attribute.KeyValue {
	if !c.Known() {
		return attrs
	}
	return append(attrs, attribute.String("network.local.address", c.Local.Addr().Unmap().String()),
		attribute.Int("network.local.port", int(c.Local.Port())))
}
