package tracer

import (
	"net/netip"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/span"
)

// Client event in, exact span out: name, kind, parent, attributes, status.
func TestHTTPClientSpan(t *testing.T) {
	start := time.Unix(1700000000, 0)
	base := event.HTTPClient{
		Process: &event.Process{PID: 7, ServiceName: "svc"},
		Start:   start, End: start.Add(2 * time.Millisecond),
		SpanContext: event.SpanContext{TraceID: event.TraceID{1}, SpanID: event.SpanID{2}, Parent: event.SpanID{3}},
		Method:      "GET", Scheme: "https", Host: "api.example", Path: "/v1/items", Status: 200,
	}
	for _, tc := range []struct {
		name      string
		edit      func(*event.HTTPClient)
		errorType string // "" for no error
		port      int64
	}{
		{name: "ok, default https port", port: 443},
		{name: "4xx fails a client call", edit: func(e *event.HTTPClient) { e.Status = 404 }, errorType: "404", port: 443},
		{name: "transport error", edit: func(e *event.HTTPClient) { e.Status, e.Err, e.ErrorType = 0, true, "*net.OpError" }, errorType: "*net.OpError", port: 443},
		{name: "explicit port", edit: func(e *event.HTTPClient) { e.Scheme, e.Host = "http", "api.example:8080" }, port: 8080},
		{name: "known connection", edit: func(e *event.HTTPClient) {
			e.Conn = event.Conn{Local: netip.MustParseAddrPort("[::1]:40123"), Remote: netip.MustParseAddrPort("[::1]:443")}
		}, port: 443},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := base
			if tc.edit != nil {
				tc.edit(&e)
			}
			s := (&e).Span()
			a := attrs(s.Attributes())
			if s.Name != "GET" || s.Kind != span.KindClient || !s.Start.Equal(e.Start) || !s.End.Equal(e.End) {
				t.Errorf("name %q kind %v times %v %v", s.Name, s.Kind, s.Start, s.End)
			}
			if s.TraceID != span.TraceID(e.TraceID) || s.SpanID != span.SpanID(e.SpanID) || s.Parent != span.SpanID(e.Parent) {
				t.Errorf("ids %v %v parent %v", s.TraceID, s.SpanID, s.Parent)
			}
			if want := e.Scheme + "://" + e.Host + "/v1/items"; a["url.full"].AsString() != want {
				t.Errorf("url.full %q, want %q", a["url.full"].AsString(), want)
			}
			if a["server.address"].AsString() != "api.example" || a["server.port"].AsInt64() != tc.port {
				t.Errorf("server %v:%v, want api.example:%d", a["server.address"], a["server.port"], tc.port)
			}
			if got, ok := a["http.response.status_code"]; (e.Status != 0) != ok || (ok && got.AsInt64() != int64(e.Status)) {
				t.Errorf("status code attribute %v (present %v), event status %d", got, ok, e.Status)
			}
			if (s.Status == span.Error) != (tc.errorType != "") || a["error.type"].AsString() != tc.errorType {
				t.Errorf("status %v error.type %q, want error.type %q", s.Status, a["error.type"].AsString(), tc.errorType)
			}
			// The client's end of the connection, as the callee's span
			// names its peer: only when the probe read it.
			_, hasLocal := a["network.local.port"]
			if hasLocal != e.Conn.Known() || (hasLocal && (a["network.local.address"].AsString() != "::1" || a["network.local.port"].AsInt64() != 40123)) {
				t.Errorf("network.local %v:%v (present %v), conn %v", a["network.local.address"], a["network.local.port"], hasLocal, e.Conn)
			}
		})
	}
}

// gRPC events in, exact spans out: which codes fail which side, the peer on
// servers, the dial target's address on clients.
func TestGRPCSpan(t *testing.T) {
	start := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		name   string
		e      event.GRPC
		failed bool
		check  map[string]any
	}{
		{name: "server OK", e: event.GRPC{Server: true, Method: "/shop.Cart/Add", Code: 0, Peer: netip.MustParseAddrPort("10.0.0.5:4321")},
			check: map[string]any{"rpc.service": "shop.Cart", "rpc.method": "Add", "rpc.grpc.status_code": int64(0), "client.address": "10.0.0.5", "client.port": int64(4321)}},
		{name: "server INTERNAL fails", e: event.GRPC{Server: true, Method: "/shop.Cart/Add", Code: 13}, failed: true,
			check: map[string]any{"rpc.grpc.status_code": int64(13)}},
		{name: "server NOT_FOUND is the caller's", e: event.GRPC{Server: true, Method: "/shop.Cart/Add", Code: 5},
			check: map[string]any{"rpc.grpc.status_code": int64(5)}},
		{name: "client NOT_FOUND fails", e: event.GRPC{Method: "/shop.Cart/Add", Code: 5, DialTarget: "dns:///cart.shop:50051"}, failed: true,
			check: map[string]any{"server.address": "cart.shop", "server.port": int64(50051)}},
		{name: "client OK, plain target", e: event.GRPC{Method: "/shop.Cart/Add", Code: 0, DialTarget: "127.0.0.1:9000"},
			check: map[string]any{"server.address": "127.0.0.1", "server.port": int64(9000)}},
		{name: "client on a known connection", e: event.GRPC{Method: "/shop.Cart/Add", Code: 0, DialTarget: "127.0.0.1:9000",
			Conn: event.Conn{Local: netip.MustParseAddrPort("127.0.0.1:40123"), Remote: netip.MustParseAddrPort("127.0.0.1:9000")}},
			check: map[string]any{"network.local.address": "127.0.0.1", "network.local.port": int64(40123)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.e
			e.Process = &event.Process{PID: 1}
			e.Start, e.End = start, start.Add(time.Millisecond)
			e.SpanContext = event.SpanContext{TraceID: event.TraceID{4}, SpanID: event.SpanID{5}}
			s := (&e).Span()
			wantKind := span.KindClient
			if e.Server {
				wantKind = span.KindServer
			}
			if s.Name != "shop.Cart/Add" || s.Kind != wantKind {
				t.Errorf("name %q kind %v", s.Name, s.Kind)
			}
			if (s.Status == span.Error) != tc.failed {
				t.Errorf("status %v, want failed %v", s.Status, tc.failed)
			}
			a := attrs(s.Attributes())
			if a["rpc.system"].AsString() != "grpc" {
				t.Errorf("rpc.system %v", a["rpc.system"])
			}
			for k, want := range tc.check {
				if got := a[attribute.Key(k)].AsInterface(); got != want {
					t.Errorf("%s = %v, want %v", k, got, want)
				}
			}
		})
	}
}
