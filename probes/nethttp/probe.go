// Package nethttp instruments net/http: one server span per request served.
package nethttp

import (
	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/contract"
	"github.com/golens/golens/probes/event"
)

// Probe declares the net/http probes: server spans, client spans, and the
// in-process links between them (one object, so they share their maps).
var Probe = probes.Spec{
	Name:  "net/http",
	MinGo: 21,
	Hooks: []probes.Hook{{
		Name:   "server",
		Symbol: "net/http.serverHandler.ServeHTTP",
		Entry:  "uprobe_server_entry",
		Return: "uprobe_server_return",
	}, {
		Name:   "client",
		Symbol: "net/http.(*Transport).roundTrip",
		Entry:  "uprobe_client_entry",
		Return: "uprobe_client_return",
		Fields: []probes.Field{
			{Const: "off_response_status_code", Struct: "net/http.Response", Field: "StatusCode"},
			{Const: "off_url_scheme", Struct: "net/url.URL", Field: "Scheme"},
			{Const: "off_url_host", Struct: "net/url.URL", Field: "Host"},
		},
		// A program that never sends HTTP requests has no Transport code.
		Optional: true,
	}, {
		// The connection an HTTP/1.x request goes out on, for the client
		// event and for --inject-context's announcement (one more hit per
		// request; see uprobe_client_conn).
		Name:     "client_conn",
		Symbol:   "net/http.(*persistConn).roundTrip",
		Entry:    "uprobe_client_conn",
		Fields:   append([]probes.Field{{Const: "off_pconn_conn", Struct: "net/http.persistConn", Field: "conn"}}, probes.ConnFields...),
		Consts:   map[string]any{probes.ConnKnown: uint8(1)},
		Optional: true,
	},
		h2Client("net/http.(*http2ClientConn).roundTrip", "net/http.http2ClientConn"),
		h2Client("net/http/internal/http2.(*ClientConn).roundTrip", "net/http/internal/http2.ClientConn"),
		h2Headers("net/http.(*http2clientStream).encodeAndWriteHeaders", "net/http.http2clientStream", "net/http.http2ClientConn"),
		h2Headers("net/http/internal/http2.(*clientStream).encodeAndWriteHeaders", "net/http/internal/http2.clientStream", "net/http/internal/http2.ClientConn"),
		{
			Name:   "goroutines",
			Symbol: "runtime.newproc1",
			Return: "uprobe_newproc1_return",
			Fields: []probes.Field{
				{Const: "off_g_goid", Struct: "runtime.g", Field: "goid"},
				{Const: "off_g_parent_goid", Struct: "runtime.g", Field: "parentGoid"},
			},
			Consts:   map[string]any{"track_goroutines": uint8(1)},
			Feature:  probes.FeatureGoroutines,
			Optional: true,
		}, {
			// A handler's panic that net/http recovers: the request ends there
			// (see uprobe_recovery). Hit only when a recover() succeeds.
			Name:   "panics",
			Symbol: "runtime.recovery",
			Entry:  "uprobe_recovery",
			Fields: []probes.Field{
				{Const: "off_g_stack", Struct: "runtime.g", Field: "stack"},
				{Const: "off_stack_hi", Struct: "runtime.stack", Field: "hi"},
				{Const: "off_g_panic", Struct: "runtime.g", Field: "_panic"},
				// Go 1.21 hands recovery the frame's SP in g.sigcode0, later
				// releases in the _panic itself.
				{Const: "off_panic_sp", Struct: "runtime._panic", Field: "sp", MinGo: 22},
				{Const: "off_g_sigcode0", Struct: "runtime.g", Field: "sigcode0"},
				{Const: "off_resp_cw", Struct: "net/http.response", Field: "cw"},
				{Const: "off_cw_wrote_header", Struct: "net/http.chunkWriter", Field: "wroteHeader"},
				{Const: "off_h2rws_sent_header", Struct: "net/http.http2responseWriterState", Field: "sentHeader", Optional: true},
				{Const: "off_h2rws2_sent_header", Struct: "net/http/internal/http2.responseWriterState", Field: "sentHeader", Optional: true},
			},
			Consts:   map[string]any{"track_panics": uint8(1)},
			Optional: true,
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
		// net/http's own HTTP/2 server: bundled into net/http up to Go 1.26,
		// in net/http/internal/http2 from Go 1.27.
		{Const: "off_h2rws_req", Struct: "net/http.http2responseWriterState", Field: "req", Optional: true},
		{Const: "off_h2rws_status", Struct: "net/http.http2responseWriterState", Field: "status", Optional: true},
		{Const: "off_h2rws2_req", Struct: "net/http/internal/http2.responseWriterState", Field: "req", Optional: true},
		{Const: "off_h2rws2_status", Struct: "net/http/internal/http2.responseWriterState", Field: "status", Optional: true},
		{Const: "off_h2sreq_url", Struct: "net/http/internal/http2.ServerRequest", Field: "URL", Optional: true},
		// The request's HTTP/2 stream id (event.HTTPServer.Stream).
		{Const: "off_h2rws_stream", Struct: "net/http.http2responseWriterState", Field: "stream", Optional: true},
		{Const: "off_h2stream_id", Struct: "net/http.http2stream", Field: "id", Optional: true},
		{Const: "off_h2rws2_stream", Struct: "net/http/internal/http2.responseWriterState", Field: "stream", Optional: true},
		{Const: "off_h2stream2_id", Struct: "net/http/internal/http2.stream", Field: "id", Optional: true},
		{Const: "off_req_ctx", Struct: "net/http.Request", Field: "ctx"},
	},
	Types:       probes.ConnTypes,
	ReadsGoMaps: true,
	// One instance of each per node, all targets' requests in it (sizes in
	// nethttp.c).
	PerPid: []string{bpfMapInjectPending, bpfMapCtxSpans, bpfMapServerReqs, bpfMapClientReqs, bpfMapGoidSpans, bpfMapH2Requests, bpfMapH2Callers},
	FeatureConsts: map[string]map[string]any{
		probes.FeatureInject: {"inject_enabled": uint8(1)},
	},
	Load:     loadBpf,
	Decoders: map[uint32]probes.Decoder{contract.EventHTTPServer: decodeServer, contract.EventHTTPClient: decodeClient},
	// --inject-context (see inject.go): one injector for the agent.
	Sockets: &probes.SocketPrograms{Feature: probes.FeatureInject, Start: sockets},
}

// h2Client is the hook on net/http's HTTP/2 client RoundTrip (bundled up
// to Go 1.26, net/http/internal/http2 from 1.27; a binary has one of the
// two): the connection of each HTTP/2 request, and with --inject-context
// its ids kept for its stream (see uprobe_h2_client). One more hit per
// HTTP/2 client request.
func h2Client(symbol, clientConn string) probes.Hook {
	return probes.Hook{
		Name:     "h2_client",
		Symbol:   symbol,
		Entry:    "uprobe_h2_client",
		Fields:   append([]probes.Field{{Const: "off_h2cc_tconn", Struct: clientConn, Field: "tconn"}}, probes.ConnFields...),
		Consts:   map[string]any{probes.ConnKnown: uint8(1)},
		Optional: true,
	}
}

// h2Headers is the hook where an HTTP/2 request's stream id is known and
// its header block not yet written: the id for the client event (same-node
// linking pairs HTTP/2 calls by connection and stream) and, with
// --inject-context, the announcement by connection and stream (see
// uprobe_h2_headers). One more hit per HTTP/2 client request.
func h2Headers(symbol, clientStream, clientConn string) probes.Hook {
	return probes.Hook{
		Name:   "h2_headers",
		Symbol: symbol,
		Entry:  "uprobe_h2_headers",
		Fields: append([]probes.Field{
			{Const: "off_h2cs_cc", Struct: clientStream, Field: "cc"},
			{Const: "off_h2cs_id", Struct: clientStream, Field: "ID"},
			{Const: "off_h2cc_tconn", Struct: clientConn, Field: "tconn"},
		}, probes.ConnFields...),
		Consts:   map[string]any{probes.ConnKnown: uint8(1)},
		Optional: true,
	}
}

// Bits of the events' cut field, mirroring the CUT_ enum in nethttp.c.
const (
	cutMethod = 1 << iota
	cutPath
	cutRoute
	cutHost
	cutRemote
)

// cutNames name the cut bits, lowest first.
var cutNames = []string{"method", "path", "route", "host", "remote"}

func decodeServer(raw []byte, t *probes.Target) (event.Event, error) {
	e, err := probes.View[bpfHttpServerEvent](raw)
	if err != nil {
		return nil, err
	}
	ev := &event.HTTPServer{
		Process:    t.Proc,
		Start:      t.Clock.Time(e.StartNs),
		End:        t.Clock.Time(e.EndNs),
		Method:     str(t, e.Method[:], e.MethodLen, e.Cut&cutMethod != 0),
		Path:       str(t, e.Path[:], e.PathLen, e.Cut&cutPath != 0),
		Route:      str(t, e.Route[:], e.RouteLen, e.Cut&cutRoute != 0),
		Host:       str(t, e.Host[:], e.HostLen, e.Cut&cutHost != 0),
		RemoteAddr: str(t, e.Remote[:], e.RemoteLen, e.Cut&cutRemote != 0),
		Status:     int(e.Status),
		ProtoMajor: int(e.ProtoMajor),
		ProtoMinor: int(e.ProtoMinor),
		Panicked:   e.Panicked != 0,
		Stream:     e.Stream,
	}
	ev.SpanContext = spanContext(&e.Sc)
	// A handler that writes nothing gets a 200 from net/http after it
	// returns, over HTTP/1.x and HTTP/2 alike. An HTTP/2 request whose
	// writer was not net/http's own keeps 0: unknown. After a panic the
	// probe reads the status only when the header block had gone out: else
	// the client got no response, and the span carries no status.
	if ev.Status == 0 && e.StatusRead != 0 {
		ev.Status = 200
	}
	ev.Truncated = truncated(e.Cut)
	return ev, nil
}

func truncated(cut uint8) []string {
	var names []string
	for i, name := range cutNames {
		if cut&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	return names
}

func decodeClient(raw []byte, t *probes.Target) (event.Event, error) {
	e, err := probes.View[bpfHttpClientEvent](raw)
	if err != nil {
		return nil, err
	}
	ev := &event.HTTPClient{
		Process: t.Proc,
		Start:   t.Clock.Time(e.StartNs),
		End:     t.Clock.Time(e.EndNs),
		Link:    event.ParentLink(e.Link),
		Method:  str(t, e.Method[:], e.MethodLen, e.Cut&cutMethod != 0),
		// The probe records no cut bit for the scheme; one that fills its
		// buffer may have been cut.
		Scheme:    str(t, e.Scheme[:], e.SchemeLen, int(e.SchemeLen) >= len(e.Scheme)),
		Host:      str(t, e.Host[:], e.HostLen, e.Cut&cutHost != 0),
		Path:      str(t, e.Path[:], e.PathLen, e.Cut&cutPath != 0),
		Status:    int(e.Status),
		Err:       e.ErrItab != 0,
		Truncated: truncated(e.Cut),
		Conn:      probes.ConnTuple(e.Conn.LocalIp, e.Conn.RemoteIp, e.Conn.LocalPort, e.Conn.RemotePort),
		Stream:    e.Stream,
	}
	ev.SpanContext = spanContext(&e.Sc)
	if ev.Err {
		ev.Status = 0 // no response with an error
		// A type name from the target's symbol table: its bytes, too.
		if ev.ErrorType = event.ValidUTF8(t.ErrorType(e.ErrItab)); ev.ErrorType == "" {
			ev.ErrorType = "_OTHER"
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

func str(t *probes.Target, b []uint8, n uint16, cut bool) string {
	return t.Text.String(b, int(n), cut)
}
