package grpc

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

var proc = &event.Process{PID: 7, ServiceName: "api"}

func target() *probes.Target {
	return &probes.Target{Proc: proc, Clock: &probes.Clock{}, Text: probes.NewText()}
}

func raw(e *bpfGrpcEvent) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(e)), unsafe.Sizeof(*e))...)
}

func grpcEvent(server bool, method, addr string, cut uint8, code int32, ip []byte, port uint16) *bpfGrpcEvent {
	e := &bpfGrpcEvent{StartNs: 100, EndNs: 900, Code: code, Cut: cut, Port: port, Link: 1}
	e.Hdr.Kind = contract.EventGRPC
	if server {
		e.Side = 1
	}
	e.Sc = bpfSpanContext{TraceId: [16]uint8{0xaa}, SpanId: [8]uint8{0xbb}, TraceFlags: 1, TpState: 2}
	e.MethodLen = uint16(copy(e.Method[:], method))
	e.AddrLen = uint16(copy(e.Addr[:], addr))
	e.IpLen = uint8(copy(e.Ip[:], ip))
	return e
}

func TestDecode(t *testing.T) {
	base := event.GRPC{Process: proc, Start: time.Unix(0, 100), End: time.Unix(0, 900), Linked: true,
		SpanContext: event.SpanContext{TraceID: event.TraceID{0xaa}, SpanID: event.SpanID{0xbb}, Flags: 1, Traceparent: event.TraceparentMalformed}}
	with := func(f func(*event.GRPC)) *event.GRPC { e := base; f(&e); return &e }
	longMethod := "/pkg.Service/" + strings.Repeat("M", 114) // 127 bytes
	for _, c := range []struct {
		name string
		in   *bpfGrpcEvent
		want *event.GRPC
	}{
		{"server, IPv4 peer", grpcEvent(true, "/test.Echo/Ok", "", 0, 0, []byte{10, 0, 0, 1}, 5555),
			with(func(e *event.GRPC) {
				e.Server, e.Method, e.Peer = true, "/test.Echo/Ok", netip.MustParseAddrPort("10.0.0.1:5555")
			})},
		{"server, IPv4-mapped IPv6 peer", grpcEvent(true, "/a/b", "", 0, 12, netip.MustParseAddr("::ffff:192.168.1.2").AsSlice(), 80),
			with(func(e *event.GRPC) {
				e.Server, e.Method, e.Code, e.Peer = true, "/a/b", 12, netip.MustParseAddrPort("192.168.1.2:80")
			})},
		{"client", grpcEvent(false, "/test.Echo/Fail", "dns:///b:50051", 0, 13, nil, 0),
			with(func(e *event.GRPC) { e.Method, e.DialTarget, e.Code = "/test.Echo/Fail", "dns:///b:50051", 13 })},
		{"invalid bytes", grpcEvent(false, "/pkg.S\xff/M\xfe", "h\xc3st", 0, 0, nil, 0),
			with(func(e *event.GRPC) { e.Method, e.DialTarget = "/pkg.S\uFFFD/M\uFFFD", "h\uFFFDst" })},
		{"cut method splitting a rune, target filling its buffer", grpcEvent(false, longMethod+"é", strings.Repeat("t", 63)+"€", 1, 0, nil, 0),
			with(func(e *event.GRPC) { e.Method, e.DialTarget, e.Cut = longMethod, strings.Repeat("t", 63), true })},
		{"peer of a bad length is left out", grpcEvent(true, "/a/b", "", 0, 0, []byte{1, 2, 3}, 9),
			with(func(e *event.GRPC) { e.Server, e.Method = true, "/a/b" })},
	} {
		got, err := decode(raw(c.in), target())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
	if _, err := decode(make([]byte, 10), target()); err == nil {
		t.Error("a short event decoded")
	}
}

// FuzzDecode: any bytes decode to an event with valid UTF-8 strings, or
// to an error; never a panic.
func FuzzDecode(f *testing.F) {
	f.Add(raw(grpcEvent(true, "/test.Echo/Ok", "", 0, 0, []byte{10, 0, 0, 1}, 5555)))
	f.Add(raw(grpcEvent(false, "/test.Echo/Fail", "dns:///b:50051", 0, 13, nil, 0)))
	f.Add(raw(grpcEvent(false, "/pkg.S\xff/M", "\xc3", 1, 0, nil, 0)))
	f.Add([]byte{4, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decode(b, target())
		if err != nil {
			return
		}
		e := ev.(*event.GRPC)
		for _, s := range []string{e.Method, e.DialTarget} {
			if !utf8.ValidString(s) {
				t.Fatalf("%q is not valid UTF-8", s)
			}
		}
		if e.Peer.IsValid() && !e.Peer.Addr().Is4() && !e.Peer.Addr().Is6() {
			t.Fatalf("peer %v", e.Peer)
		}
		// The span's Source promise: keys and strings valid, as the
		// encoder writes them without a second check.
		sp := e.Span()
		for _, kv := range sp.Attributes() {
			for _, s := range []string{string(kv.Key), kv.Value.Emit()} {
				if !utf8.ValidString(s) {
					t.Fatalf("attribute %q: %q is not valid UTF-8", kv.Key, s)
				}
			}
		}
	})
}

// Event bytes in, exact span, sampler health, call identity and metric
// record out, for both sides of an RPC: no kernel.
func TestSpan(t *testing.T) {
	ids := func(s span.Span) span.Span {
		s.TraceID, s.SpanID, s.Flags = span.TraceID{0xaa}, span.SpanID{0xbb}, span.FlagSampled
		s.Kind, s.Start, s.End = span.KindClient, time.Unix(0, 100), time.Unix(0, 900)
		return s
	}
	sc := event.SpanContext{TraceID: event.TraceID{0xaa}, SpanID: event.SpanID{0xbb}, Flags: 1, Traceparent: event.TraceparentMalformed}
	for _, c := range []struct {
		name       string
		in         *bpfGrpcEvent
		want       span.Span
		served     bool // a served call: the sampler counts it
		failed     bool
		call       event.Call
		instrument event.Instrument
		code       string
	}{
		{"served, ok", grpcEvent(true, "/shop.Cart/Add", "", 0, 0, []byte{10, 0, 0, 1}, 5555), func() span.Span {
			s := ids(span.Span{Name: "shop.Cart/Add", Attrs: []attribute.KeyValue{
				attribute.String("rpc.system", "grpc"),
				attribute.String("rpc.service", "shop.Cart"),
				attribute.String("rpc.method", "Add"),
				attribute.Int("rpc.grpc.status_code", 0),
				attribute.String("client.address", "10.0.0.1"),
				attribute.Int("client.port", 5555),
			}})
			s.Kind = span.KindServer
			return s
		}(), true, false, event.Call{Server: true, Method: "grpc", Path: "/shop.Cart/Add", Peer: "10.0.0.1:5555"},
			event.GRPCServerCalls, "OK"},
		// NOT_FOUND is the caller's doing: not a server error, but a
		// failed call for the client.
		{"served, NOT_FOUND", grpcEvent(true, "/shop.Cart/Get", "", 0, 5, nil, 0), func() span.Span {
			s := ids(span.Span{Name: "shop.Cart/Get", Attrs: []attribute.KeyValue{
				attribute.String("rpc.system", "grpc"),
				attribute.String("rpc.service", "shop.Cart"),
				attribute.String("rpc.method", "Get"),
				attribute.Int("rpc.grpc.status_code", 5),
			}})
			s.Kind = span.KindServer
			return s
		}(), true, false, event.Call{Server: true, Method: "grpc", Path: "/shop.Cart/Get"},
			event.GRPCServerCalls, "NOT_FOUND"},
		{"served, UNAVAILABLE", grpcEvent(true, "/shop.Cart/Get", "", 0, 14, nil, 0), func() span.Span {
			s := ids(span.Span{Name: "shop.Cart/Get", Status: span.Error, StatusMessage: "UNAVAILABLE", Attrs: []attribute.KeyValue{
				attribute.String("rpc.system", "grpc"),
				attribute.String("rpc.service", "shop.Cart"),
				attribute.String("rpc.method", "Get"),
				attribute.Int("rpc.grpc.status_code", 14),
			}})
			s.Kind = span.KindServer
			return s
		}(), true, true, event.Call{Server: true, Method: "grpc", Path: "/shop.Cart/Get"},
			event.GRPCServerCalls, "UNAVAILABLE"},
		{"made, NOT_FOUND, cut method", grpcEvent(false, "/shop.Cart/Get", "dns:///cart:50051", 1, 5, nil, 0),
			ids(span.Span{Name: "shop.Cart/Get", Status: span.Error, StatusMessage: "NOT_FOUND", Attrs: []attribute.KeyValue{
				attribute.String("rpc.system", "grpc"),
				attribute.String("rpc.service", "shop.Cart"),
				attribute.String("rpc.method", "Get"),
				attribute.Int("rpc.grpc.status_code", 5),
				attribute.String("server.address", "cart"),
				attribute.Int("server.port", 50051),
				attribute.StringSlice("golens.truncated", []string{"method"}),
			}}), false, true, event.Call{Method: "grpc", Path: "/shop.Cart/Get", Linked: true},
			event.GRPCClientCalls, "NOT_FOUND"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev, err := decode(raw(c.in), target())
			if err != nil {
				t.Fatal(err)
			}
			if got := span.Flat(ev.(event.Spanner).Span()); !reflect.DeepEqual(got, c.want) {
				t.Errorf("span:\n got %+v\nwant %+v", got, c.want)
			}
			if d, failed, ok := ev.(event.Served).Served(); ok != c.served || (ok && (d != 800 || failed != c.failed)) {
				t.Errorf("served %s failed %v ok %v, want 800ns, %v, %v", d, failed, ok, c.failed, c.served)
			}
			c.call.Start, c.call.End, c.call.SpanContext = time.Unix(0, 100), time.Unix(0, 900), sc
			if got := ev.(event.Linkable).Call(); !reflect.DeepEqual(got, c.call) {
				t.Errorf("call:\n got %+v\nwant %+v", got, c.call)
			}
			want := event.Measure{Instrument: c.instrument, Duration: 800, Method: ev.(*event.GRPC).Method, Code: c.code}
			if got := ev.(event.Measured).Measure(); got != want {
				t.Errorf("measure:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}
