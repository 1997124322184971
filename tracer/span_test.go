package tracer

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/span"
)

func attrs(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value)
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestHTTPServerSpan(t *testing.T) {
	start := time.Unix(1700000000, 0)
	base := event.HTTPServer{
		Process: &event.Process{PID: 7, ServiceName: "svc"},
		Start:   start, End: start.Add(3 * time.Millisecond),
		SpanContext: event.SpanContext{
			TraceID: event.TraceID{1, 2, 3}, SpanID: event.SpanID{9},
		},
		Method: "GET", Path: "/items/42", Host: "shop.example:8080", RemoteAddr: "[::1]:5555",
		Status: 200, ProtoMajor: 1, ProtoMinor: 1,
	}
	tests := []struct {
		name       string
		edit       func(*event.HTTPServer)
		wantName   string
		wantStatus span.Code
		check      func(t *testing.T, a map[attribute.Key]attribute.Value)
	}{
		{name: "no route", wantName: "GET", check: func(t *testing.T, a map[attribute.Key]attribute.Value) {
			if _, ok := a["http.route"]; ok {
				t.Error("http.route without a pattern")
			}
			if a["server.address"].AsString() != "shop.example" || a["server.port"].AsInt64() != 8080 {
				t.Errorf("server address/port %v %v", a["server.address"], a["server.port"])
			}
			if a["client.address"].AsString() != "::1" || a["client.port"].AsInt64() != 5555 {
				t.Errorf("client %v %v", a["client.address"], a["client.port"])
			}
			if a["network.protocol.version"].AsString() != "1.1" {
				t.Errorf("protocol %v", a["network.protocol.version"])
			}
		}},
		{name: "pattern with method and host", edit: func(e *event.HTTPServer) { e.Route = "GET shop.example/items/{id}" },
			wantName: "GET /items/{id}", check: func(t *testing.T, a map[attribute.Key]attribute.Value) {
				if a["http.route"].AsString() != "/items/{id}" {
					t.Errorf("route %v", a["http.route"])
				}
			}},
		{name: "5xx is an error", edit: func(e *event.HTTPServer) { e.Status = 502 }, wantName: "GET", wantStatus: span.Error},
		{name: "panicked without a response", edit: func(e *event.HTTPServer) { e.Status, e.Panicked = 0, true }, wantName: "GET", wantStatus: span.Error,
			check: func(t *testing.T, a map[attribute.Key]attribute.Value) {
				if _, ok := a["http.response.status_code"]; ok || a["error.type"].AsString() != "panic" {
					t.Errorf("status %v error.type %v", a["http.response.status_code"], a["error.type"])
				}
			}},
		{name: "panicked after the header", edit: func(e *event.HTTPServer) { e.Status, e.Panicked = 202, true }, wantName: "GET", wantStatus: span.Error,
			check: func(t *testing.T, a map[attribute.Key]attribute.Value) {
				if a["http.response.status_code"].AsInt64() != 202 || a["error.type"].AsString() != "panic" {
					t.Errorf("status %v error.type %v", a["http.response.status_code"], a["error.type"])
				}
			}},
		{name: "4xx is not", edit: func(e *event.HTTPServer) { e.Status = 404 }, wantName: "GET"},
		{name: "unknown method", edit: func(e *event.HTTPServer) { e.Method = "BREW" }, wantName: "_OTHER",
			check: func(t *testing.T, a map[attribute.Key]attribute.Value) {
				if a["http.request.method_original"].AsString() != "BREW" {
					t.Errorf("method_original %v", a["http.request.method_original"])
				}
			}},
		{name: "unknown status omitted", edit: func(e *event.HTTPServer) { e.Status = 0; e.ProtoMajor, e.ProtoMinor = 2, 0 }, wantName: "GET",
			check: func(t *testing.T, a map[attribute.Key]attribute.Value) {
				if _, ok := a["http.response.status_code"]; ok {
					t.Error("status code attribute for an unknown status")
				}
				if a["network.protocol.version"].AsString() != "2" {
					t.Errorf("protocol %v", a["network.protocol.version"])
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base
			if tt.edit != nil {
				tt.edit(&e)
			}
			s := (&e).Span()
			if s.Name != tt.wantName {
				t.Errorf("name %q, want %q", s.Name, tt.wantName)
			}
			if s.Status != tt.wantStatus {
				t.Errorf("status %v, want %v", s.Status, tt.wantStatus)
			}
			if s.Kind != span.KindServer || !s.Start.Equal(e.Start) || !s.End.Equal(e.End) {
				t.Errorf("kind/times %v %v %v", s.Kind, s.Start, s.End)
			}
			if s.HasParent() {
				t.Error("root span has a parent")
			}
			if tt.check != nil {
				tt.check(t, attrs(s.Attributes()))
			}
		})
	}
}

func TestHTTPServerSpanParent(t *testing.T) {
	e := &event.HTTPServer{
		Process: &event.Process{}, Method: "GET", Status: 200, ProtoMajor: 1,
		SpanContext: event.SpanContext{
			TraceID: event.TraceID{0xaa}, SpanID: event.SpanID{0xbb}, Parent: event.SpanID{0xcc},
			Flags: 0, Traceparent: event.TraceparentValid,
		},
	}
	s := e.Span()
	if !s.ParentRemote || s.Parent != (span.SpanID{0xcc}) || s.TraceID != (span.TraceID{0xaa}) {
		t.Errorf("parent %+v", s.Parent)
	}
	if s.TraceID != (span.TraceID{0xaa}) || s.SpanID != (span.SpanID{0xbb}) {
		t.Errorf("self %s %s", s.TraceID, s.SpanID)
	}
}
