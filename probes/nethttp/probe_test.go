package nethttp

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/contract"
	"github.com/golens/golens/probes/event"
)

var proc = &event.Process{PID: 42, ServiceName: "checkout"}

func target(errType string) *probes.Target {
	return &probes.Target{Proc: proc, Clock: &probes.Clock{}, ErrorType: func(uint64) string { return errType }}
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
			return
		}
		ev, err := decodeServer(b, tg)
		if err != nil {
			return
		}
		e := ev.(*event.HTTPServer)
		checkValid(t, e.Method, e.Path, e.Route, e.Host, e.RemoteAddr)
		checkTruncated(t, e.Truncated)
	})
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
