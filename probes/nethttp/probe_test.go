package nethttp

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"go.opentelemetry.io/otel/attribute"

	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/contract"
	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/span"
)

var proc = &event.Process{PID: 42, ServiceName: "checkout"}

func target(errType string) *probes.Target {
	return &probes.Target{Proc: proc, Clock: &probes.Clock{}, ErrorType: func(uint64) string { return errType }, Text: probes.NewText()}
}

// raw is an event's bytes as the ring buffer delivers them.
func raw[T any](e *T) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(e)), unsafe.Sizeof(*e))...)
}

// put copies s into a probe buffer and returns its length, as
// go_string_copy does: cut to the buffer.
func put(buf []uint8, s string) uint16 { return uint16(copy(buf, s)) }

func serverEvent(method, path, route, host, remote string, cut uint8) *bpfHttpServerEvent {
	e := &bpfHttpServerEvent{StartNs: 1_000, EndNs: 3_500, ProtoMajor: 1, ProtoMinor: 1, Cut: cut, StatusRead: 1}
	e.Hdr.Kind = contract.EventHTTPServer
	e.Sc = bpfSpanContext{TraceId: [16]uint8{1, 2, 3}, SpanId: [8]uint8{4}, ParentSpanId: [8]uint8{5}, TraceFlags: 1, TpState: 1}
	e.MethodLen = put(e.Method[:], method)
	e.PathLen = put(e.Path[:], path)
	e.RouteLen = put(e.Route[:], route)
	e.HostLen = put(e.Host[:], host)
	e.RemoteLen = put(e.Remote[:], remote)
	return e
}

func wantServer(method, path, route, host, remote string, truncated []string) *event.HTTPServer {
	return &event.HTTPServer{
		Process: proc, Start: time.Unix(0, 1_000), End: time.Unix(0, 3_500),
		SpanContext: event.SpanContext{TraceID: event.TraceID{1, 2, 3}, SpanID: event.SpanID{4}, Parent: event.SpanID{5},
			Flags: 1, Traceparent: event.TraceparentValid},
		Method: method, Path: path, Route: route, Host: host, RemoteAddr: remote,
		Status: 200, ProtoMajor: 1, ProtoMinor: 1, Truncated: truncated,
	}
}

func TestDecodeServer(t *testing.T) {
	long := "/" + strings.Repeat("a", 126) // 127 bytes: é's first byte is the 128th
	for _, c := range []struct {
		name string
		in   *bpfHttpServerEvent
		want *event.HTTPServer
	}{
		{"plain",
			serverEvent("GET", "/items/42", "GET /items/{id}", "example.com", "10.0.0.1:5555", 0),
			wantServer("GET", "/items/42", "GET /items/{id}", "example.com", "10.0.0.1:5555", nil)},
		{"invalid bytes become U+FFFD",
			serverEvent("G\xffT", "/\xff\xfe", "", "h\xc3", "", 0),
			wantServer("G\uFFFDT", "/\uFFFD\uFFFD", "", "h\uFFFD", "", nil)},
		{"a rune split by the cut is dropped",
			serverEvent("GET", long+"é/more", "", "", "", cutPath),
			wantServer("GET", long, "", "", "", []string{"path"})},
		{"every field cut",
			serverEvent("VERYLONGMETHOD€€", strings.Repeat("p", 128), strings.Repeat("r", 128), strings.Repeat("h", 63)+"é", strings.Repeat("1", 64), 31),
			wantServer("VERYLONGMETHOD", strings.Repeat("p", 128), strings.Repeat("r", 128), strings.Repeat("h", 63), strings.Repeat("1", 64),
				[]string{"method", "path", "route", "host", "remote"})},
	} {
		got, err := decodeServer(raw(c.in), target(""))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
	// Status: net/http's implicit 200 only when the status was read.
	e := serverEvent("GET", "/", "", "", "", 0)
	e.StatusRead = 0
	if got, _ := decodeServer(raw(e), target("")); got.(*event.HTTPServer).Status != 0 {
		t.Errorf("status unread: %d, want 0", got.(*event.HTTPServer).Status)
	}
	if _, err := decodeServer(raw(e)[:100], target("")); err == nil {
		t.Error("a short event decoded")
	}
}

func clientEvent(method, scheme, host, path string, cut uint8, status, itab uint64) *bpfHttpClientEvent {
	e := &bpfHttpClientEvent{StartNs: 10, EndNs: 20, Status: status, ErrItab: itab, Cut: cut, Link: 1}
	e.Hdr.Kind = contract.EventHTTPClient
	e.Sc = bpfSpanContext{TraceId: [16]uint8{9}, SpanId: [8]uint8{8}, ParentSpanId: [8]uint8{7}, TraceFlags: 1}
	e.MethodLen = put(e.Method[:], method)
	e.SchemeLen = put(e.Scheme[:], scheme)
	e.HostLen = put(e.Host[:], host)
	e.PathLen = put(e.Path[:], path)
	return e
}

func TestDecodeClient(t *testing.T) {
	base := event.HTTPClient{Process: proc, Start: time.Unix(0, 10), End: time.Unix(0, 20), Link: event.LinkContext,
		SpanContext: event.SpanContext{TraceID: event.TraceID{9}, SpanID: event.SpanID{8}, Parent: event.SpanID{7}, Flags: 1}}
	with := func(f func(*event.HTTPClient)) *event.HTTPClient { e := base; f(&e); return &e }
	for _, c := range []struct {
		name    string
		in      *bpfHttpClientEvent
		errType string
		want    *event.HTTPClient
	}{
		{"response", clientEvent("POST", "http", "backend:8080", "/orders", 0, 201, 0), "",
			with(func(e *event.HTTPClient) {
				e.Method, e.Scheme, e.Host, e.Path, e.Status = "POST", "http", "backend:8080", "/orders", 201
			})},
		{"transport error, type known", clientEvent("GET", "https", "x", "/", 0, 0, 0xdead), "*net.OpError",
			with(func(e *event.HTTPClient) {
				e.Method, e.Scheme, e.Host, e.Path, e.Err, e.ErrorType = "GET", "https", "x", "/", true, "*net.OpError"
			})},
		{"transport error, type unknown", clientEvent("GET", "http", "x", "/", 0, 0, 0xdead), "",
			with(func(e *event.HTTPClient) {
				e.Method, e.Scheme, e.Host, e.Path, e.Err, e.ErrorType = "GET", "http", "x", "/", true, "_OTHER"
			})},
		{"invalid bytes, a type name from a crafted binary", clientEvent("GET", "ht\xfftp", "\xc3", "/caf\xe9", 0, 0, 1), "*main.\xffErr",
			with(func(e *event.HTTPClient) {
				e.Method, e.Scheme, e.Host, e.Path, e.Err, e.ErrorType = "GET", "ht\uFFFDtp", "\uFFFD", "/caf\uFFFD", true, "*main.\uFFFDErr"
			})},
		{"cut path, scheme filling its buffer", clientEvent("GET", strings.Repeat("s", 15)+"é", "h", "/"+strings.Repeat("p", 126)+"€", cutPath, 200, 0), "",
			with(func(e *event.HTTPClient) {
				e.Method, e.Scheme, e.Host, e.Path, e.Status = "GET", strings.Repeat("s", 15), "h", "/"+strings.Repeat("p", 126), 200
				e.Truncated = []string{"path"}
			})},
	} {
		got, err := decodeClient(raw(c.in), target(c.errType))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

// FuzzDecode: any bytes decode to an event with valid UTF-8 strings, or
// to an error; never a panic.
func FuzzDecode(f *testing.F) {
	long := "/" + strings.Repeat("a", 126) + "é"
	f.Add(false, raw(serverEvent("GET", "/items/42", "GET /items/{id}", "example.com", "10.0.0.1:5555", 0)))
	f.Add(false, raw(serverEvent("GET", "/\xff\xfe", "", "", "", 0)))
	f.Add(false, raw(serverEvent("GET", long, "", "", "", cutPath)))
	f.Add(true, raw(clientEvent("POST", "http", "backend:8080", "/orders", 0, 201, 0)))
	f.Add(true, raw(clientEvent("GET", "https", "\xc3", "/caf\xe9", cutHost, 0, 7)))
	f.Add(true, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, client bool, b []byte) {
		tg := target("*main.\xe9rr")
		if client {
			ev, err := decodeClient(b, tg)
			if err != nil {
				return
			}
			e := ev.(*event.HTTPClient)
			checkValid(t, e.Method, e.Scheme, e.Host, e.Path, e.ErrorType)
			checkTruncated(t, e.Truncated)
			checkAttrs(t, e)
			return
		}
		ev, err := decodeServer(b, tg)
		if err != nil {
			return
		}
		e := ev.(*event.HTTPServer)
		checkValid(t, e.Method, e.Path, e.Route, e.Host, e.RemoteAddr)
		checkTruncated(t, e.Truncated)
		checkAttrs(t, e)
	})
}

// checkAttrs holds a span's Source to its promise: keys and strings valid
// UTF-8, as the encoder writes them without a second check.
func checkAttrs(t *testing.T, ev event.Spanner) {
	t.Helper()
	sp := ev.Span()
	for _, kv := range sp.Attributes() {
		checkValid(t, string(kv.Key), kv.Value.Emit())
	}
}

func checkValid(t *testing.T, ss ...string) {
	t.Helper()
	for _, s := range ss {
		if !utf8.ValidString(s) {
			t.Fatalf("%q is not valid UTF-8", s)
		}
	}
}

func checkTruncated(t *testing.T, names []string) {
	t.Helper()
	for _, n := range names {
		if !strings.Contains(strings.Join(cutNames, ","), n) {
			t.Fatalf("truncated names %q", names)
		}
	}
}

// Event bytes in, exact span, sampler health, call identity and metric
// record out, for a served request: no kernel.
func TestServerSpan(t *testing.T) {
	in := serverEvent("GET", "/items/42", "GET shop.example/items/{id}", "shop.example:8080", "10.0.0.9:5555", 0)
	for _, c := range []struct {
		name             string
		status           uint64
		panicked         bool
		wantStatus       span.Code
		wantMessage      string
		wantTail         []attribute.KeyValue // after client.port, in order
		wantStatusAttr   bool
		wantFailed       bool
		wantMeasuredCode int
	}{
		{name: "ok", wantStatus: span.Unset, wantStatusAttr: true, wantMeasuredCode: 200},
		{name: "503 is the server's failure", status: 503, wantStatus: span.Error, wantStatusAttr: true, wantFailed: true,
			wantTail: []attribute.KeyValue{attribute.String("error.type", "503")}, wantMeasuredCode: 503},
		{name: "404 is the client's", status: 404, wantStatus: span.Unset, wantStatusAttr: true, wantMeasuredCode: 404},
		{name: "panic before the header", panicked: true, wantStatus: span.Error, wantMessage: "handler panicked", wantFailed: true,
			wantTail: []attribute.KeyValue{attribute.String("error.type", "panic")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := *in
			b.Status = c.status
			if c.panicked {
				b.Panicked, b.StatusRead = 1, 0
			}
			ev, err := decodeServer(raw(&b), target(""))
			if err != nil {
				t.Fatal(err)
			}
			attrs := []attribute.KeyValue{
				attribute.String("http.request.method", "GET"),
				attribute.String("url.path", "/items/42"),
			}
			status := 0
			if c.wantStatusAttr {
				status = c.wantMeasuredCode
				attrs = append(attrs, attribute.Int("http.response.status_code", status))
			}
			attrs = append(attrs,
				attribute.String("http.route", "/items/{id}"),
				attribute.String("server.address", "shop.example"),
				attribute.Int("server.port", 8080),
				attribute.String("client.address", "10.0.0.9"),
				attribute.Int("client.port", 5555),
				attribute.String("network.protocol.version", "1.1"),
			)
			attrs = append(attrs, c.wantTail...)
			want := span.Span{
				TraceID: span.TraceID{1, 2, 3}, SpanID: span.SpanID{4}, Flags: span.FlagSampled,
				Parent: span.SpanID{5}, ParentFlags: 1, ParentRemote: true,
				Name: "GET /items/{id}", Kind: span.KindServer,
				Start: time.Unix(0, 1_000), End: time.Unix(0, 3_500),
				Status: c.wantStatus, StatusMessage: c.wantMessage,
				Attrs: attrs,
			}
			if got := span.Flat(ev.(event.Spanner).Span()); !reflect.DeepEqual(got, want) {
				t.Errorf("span:\n got %+v\nwant %+v", got, want)
			}
			if d, failed, ok := ev.(event.Served).Served(); d != 2500*time.Nanosecond || failed != c.wantFailed || !ok {
				t.Errorf("served %s failed %v ok %v, want 2.5µs, %v, true", d, failed, ok, c.wantFailed)
			}
			wantCall := event.Call{Server: true, Method: "GET", Path: "/items/42", Start: want.Start, End: want.End,
				SpanContext: event.SpanContext{TraceID: event.TraceID{1, 2, 3}, SpanID: event.SpanID{4}, Parent: event.SpanID{5},
					Flags: 1, Traceparent: event.TraceparentValid},
				Peer: "10.0.0.9:5555"}
			if got := ev.(event.Linkable).Call(); !reflect.DeepEqual(got, wantCall) {
				t.Errorf("call:\n got %+v\nwant %+v", got, wantCall)
			}
			wantMeasure := event.Measure{Instrument: event.HTTPServerRequests, Duration: 2500 * time.Nanosecond, Method: "GET",
				Route: "/items/{id}", Path: "/items/42", Status: status, NoAnswer: c.panicked}
			if got := ev.(event.Measured).Measure(); got != wantMeasure {
				t.Errorf("measure:\n got %+v\nwant %+v", got, wantMeasure)
			}
		})
	}
}

// A client call: its span, call identity (the connection it went out
// on) and metric record; a client span answers no health question.
func TestClientSpan(t *testing.T) {
	for _, c := range []struct {
		name       string
		in         *bpfHttpClientEvent
		errType    string
		wantAttrs  []attribute.KeyValue
		wantStatus span.Code
		measure    event.Measure
	}{
		{"response on a known connection", func() *bpfHttpClientEvent {
			e := clientEvent("POST", "http", "backend:8080", "/orders", 0, 201, 0)
			e.Conn.LocalIp, e.Conn.RemoteIp = netip.MustParseAddr("::ffff:127.0.0.1").As16(), netip.MustParseAddr("::ffff:127.0.0.2").As16()
			e.Conn.LocalPort, e.Conn.RemotePort = 40000, 8080
			return e
		}(), "", []attribute.KeyValue{
			attribute.String("http.request.method", "POST"),
			attribute.String("url.full", "http://backend:8080/orders"),
			attribute.String("server.address", "backend"),
			attribute.Int("server.port", 8080),
			attribute.Int("http.response.status_code", 201),
			attribute.String("network.local.address", "127.0.0.1"),
			attribute.Int("network.local.port", 40000),
		}, span.Unset, event.Measure{Instrument: event.HTTPClientRequests, Duration: 10, Method: "POST", Host: "backend", Status: 201}},
		{"4xx fails the caller", clientEvent("GET", "https", "api.example", "/x", 0, 404, 0), "", []attribute.KeyValue{
			attribute.String("http.request.method", "GET"),
			attribute.String("url.full", "https://api.example/x"),
			attribute.String("server.address", "api.example"),
			attribute.Int("server.port", 443),
			attribute.Int("http.response.status_code", 404),
			attribute.String("error.type", "404"),
		}, span.Error, event.Measure{Instrument: event.HTTPClientRequests, Duration: 10, Method: "GET", Host: "api.example", Status: 404}},
		{"transport error", clientEvent("BREW", "http", "pot:80", "/", cutPath, 0, 0xdead), "*net.OpError", []attribute.KeyValue{
			attribute.String("http.request.method", "_OTHER"),
			attribute.String("url.full", "http://pot:80/"),
			attribute.String("http.request.method_original", "BREW"),
			attribute.String("server.address", "pot"),
			attribute.Int("server.port", 80),
			attribute.String("error.type", "*net.OpError"),
			attribute.StringSlice("golens.truncated", []string{"path"}),
		}, span.Error, event.Measure{Instrument: event.HTTPClientRequests, Duration: 10, Method: "_OTHER", Host: "pot", NoAnswer: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev, err := decodeClient(raw(c.in), target(c.errType))
			if err != nil {
				t.Fatal(err)
			}
			want := span.Span{
				TraceID: span.TraceID{9}, SpanID: span.SpanID{8}, Flags: span.FlagSampled,
				Parent: span.SpanID{7}, ParentFlags: 1,
				Name: c.wantAttrs[0].Value.AsString(), Kind: span.KindClient,
				Start: time.Unix(0, 10), End: time.Unix(0, 20),
				Status: c.wantStatus, Attrs: c.wantAttrs,
			}
			if got := span.Flat(ev.(event.Spanner).Span()); !reflect.DeepEqual(got, want) {
				t.Errorf("span:\n got %+v\nwant %+v", got, want)
			}
			if _, ok := ev.(event.Served); ok {
				t.Error("a client call answers the sampler's health question")
			}
			e := ev.(*event.HTTPClient)
			wantCall := event.Call{Method: e.Method, Path: e.Path, Start: want.Start, End: want.End, SpanContext: e.SpanContext,
				Linked: true, Conn: e.Conn}
			if got := ev.(event.Linkable).Call(); !reflect.DeepEqual(got, wantCall) {
				t.Errorf("call:\n got %+v\nwant %+v", got, wantCall)
			}
			if got := ev.(event.Measured).Measure(); got != c.measure {
				t.Errorf("measure:\n got %+v\nwant %+v", got, c.measure)
			}
		})
	}
}
