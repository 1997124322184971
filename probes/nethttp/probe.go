// Package nethttp instruments net/http: one server span per request served.
package nethttp

import (
	"fmt"
	"unsafe"

	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/event"
)

// eventHTTPServer mirrors EVENT_HTTP_SERVER in bpf/include/events.h.
const eventHTTPServer = 1

// Server declares the net/http server probe.
var Server = probes.Spec{
	Name:  "net/http.server",
	MinGo: 21,
	Hooks: []probes.Hook{{
		Symbol: "net/http.serverHandler.ServeHTTP",
		Entry:  "uprobe_server_entry",
		Return: "uprobe_server_return",
	}},
	Fields: []probes.Field{
		{Const: "off_req_method", Struct: "net/http.Request", Field: "Method"},
		{Const: "off_req_url", Struct: "net/http.Request", Field: "URL"},
		{Const: "off_req_proto_major", Struct: "net/http.Request", Field: "ProtoMajor"},
		{Const: "off_req_proto_minor", Struct: "net/http.Request", Field: "ProtoMinor"},
		{Const: "off_req_header", Struct: "net/http.Request", Field: "Header"},
		{Const: "off_req_host", Struct: "net/http.Request", Field: "Host"},
		{Const: "off_req_remote", Struct: "net/http.Request", Field: "RemoteAddr"},
		{Const: "off_req_pattern", Struct: "net/http.Request", Field: "Pattern", MinGo: 23},
		{Const: "off_url_path", Struct: "net/url.URL", Field: "Path"},
		{Const: "off_resp_status", Struct: "net/http.response", Field: "status"},
	},
	ReadsGoMaps: true,
	Load:        loadBpf,
	Decoders:    map[uint32]probes.Decoder{eventHTTPServer: decodeServer},
}

// Bits of http_server_event.cut.
var cutNames = []string{"method", "path", "route", "host", "remote"}

func decodeServer(raw []byte, p *event.Process, clock *probes.Clock) (event.Event, error) {
	var e *bpfHttpServerEvent
	if len(raw) < int(unsafe.Sizeof(*e)) {
		return nil, fmt.Errorf("http server event: %d bytes, want %d", len(raw), unsafe.Sizeof(*e))
	}
	e = (*bpfHttpServerEvent)(unsafe.Pointer(&raw[0]))
	ev := &event.HTTPServer{
		Process:    p,
		Start:      clock.Time(e.StartNs),
		End:        clock.Time(e.EndNs),
		Method:     str(e.Method[:], e.MethodLen),
		Path:       str(e.Path[:], e.PathLen),
		Route:      str(e.Route[:], e.RouteLen),
		Host:       str(e.Host[:], e.HostLen),
		RemoteAddr: str(e.Remote[:], e.RemoteLen),
		Status:     int(e.Status),
		ProtoMajor: int(e.ProtoMajor),
		ProtoMinor: int(e.ProtoMinor),
	}
	ev.SpanContext = spanContext(&e.Sc)
	// An HTTP/1.x handler that writes nothing gets a 200 from net/http after
	// it returns. For HTTP/2 the status is not read yet: it stays 0, unknown.
	if ev.Status == 0 && ev.ProtoMajor == 1 {
		ev.Status = 200
	}
	for i, name := range cutNames {
		if e.Cut&(1<<i) != 0 {
			ev.Truncated = append(ev.Truncated, name)
		}
	}
	return ev, nil
}

func spanContext(sc *bpfSpanContext) event.SpanContext {
	return event.SpanContext{
		TraceID:     sc.TraceId,
		SpanID:      sc.SpanId,
		Parent:      sc.ParentSpanId,
		Flags:       sc.TraceFlags,
		Traceparent: event.TraceparentState(sc.TpState),
	}
}

func str(b []uint8, n uint16) string {
	if int(n) > len(b) {
		n = uint16(len(b))
	}
	return string(b[:n])
}
