// Package grpc instruments google.golang.org/grpc: a span per RPC served
// and per RPC made, unary or streaming.
package grpc

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/contract"
	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/probes/inspect"
)

const (
	transport = "google.golang.org/grpc/internal/transport"
	grpcPkg   = "google.golang.org/grpc"
)

// Probe declares the gRPC probes. Both sides cost two hits per RPC; with
// --inject-context a client call costs one more (its stream's announcement).
var Probe = probes.Spec{
	Name:    "grpc",
	Library: grpcPkg + ".(*Server).Serve",
	MinGo:   21,
	Hooks: []probes.Hook{{
		Name:   "server",
		Symbol: grpcPkg + ".(*Server).handleStream",
		Entry:  "uprobe_grpc_server_entry",
		Fields: []probes.Field{
			{Const: "off_stream_method", Struct: transport + ".Stream", Field: "method"},
			{Const: "off_stream_ctx", Struct: transport + ".Stream", Field: "ctx"},
			// The stream id pairs the call with its client's (same-node linking).
			{Const: "off_stream_id", Struct: transport + ".Stream", Field: "id"},
			{Const: "off_server_peer", Struct: transport + ".http2Server", Field: "peer"},
			{Const: "off_tcpaddr_port", Struct: "net.TCPAddr", Field: "Port"},
		},
		Consts:   map[string]any{"stream_id_known": uint8(1)},
		Optional: true,
	}, {
		// grpc-go renamed WriteStatus to writeStatus; one of them exists.
		Name:     "server status",
		Symbol:   transport + ".(*http2Server).writeStatus",
		Entry:    "uprobe_grpc_server_status",
		Optional: true,
	}, {
		Name:     "server status (older grpc-go)",
		Symbol:   transport + ".(*http2Server).WriteStatus",
		Entry:    "uprobe_grpc_server_status",
		Optional: true,
	}, {
		// The first attempt of every call, Invoke's included, on the
		// caller's goroutine: the *clientStream keys the call (grpc.c).
		Name:   "client",
		Symbol: grpcPkg + ".(*clientStream).newAttemptLocked",
		Entry:  "uprobe_grpc_client_entry",
		Fields: []probes.Field{
			{Const: "off_cs_ctx", Struct: grpcPkg + ".clientStream", Field: "ctx"},
			{Const: "off_cs_callhdr", Struct: grpcPkg + ".clientStream", Field: "callHdr"},
			{Const: "off_callhdr_method", Struct: transport + ".CallHdr", Field: "Method"},
			{Const: "off_cs_cc", Struct: grpcPkg + ".clientStream", Field: "cc"},
			{Const: "off_cs_attempt", Struct: grpcPkg + ".clientStream", Field: "attempt"},
			{Const: "off_cc_target", Struct: grpcPkg + ".ClientConn", Field: "target"},
		},
		Optional: true,
	}, {
		Name:   "client finish",
		Symbol: grpcPkg + ".(*clientStream).finish",
		Entry:  "uprobe_grpc_client_finish",
		Fields: []probes.Field{
			{Const: "off_cs_finished", Struct: grpcPkg + ".clientStream", Field: "finished"},
			// The call's connection (event.GRPC.Conn); csAttempt.t was
			// renamed transport in grpc-go 1.71.
			{Const: "off_attempt_transport", Struct: grpcPkg + ".csAttempt", Field: "t", Optional: true},
			{Const: "off_attempt_transport", Struct: grpcPkg + ".csAttempt", Field: "transport", Optional: true},
			{Const: "off_h2c_local", Struct: transport + ".http2Client", Field: "localAddr", Optional: true},
			{Const: "off_h2c_remote", Struct: transport + ".http2Client", Field: "remoteAddr", Optional: true},
			{Const: "off_tcpaddr_ip", Struct: "net.TCPAddr", Field: "IP"},
			{Const: "off_tcpaddr_port", Struct: "net.TCPAddr", Field: "Port"},
			// The attempt's stream id (event.GRPC.Stream); csAttempt.s
			// was renamed transportStream.
			{Const: "off_stream_id", Struct: transport + ".Stream", Field: "id"},
			{Const: "off_attempt_stream", Struct: grpcPkg + ".csAttempt", Field: "s", Optional: true},
			{Const: "off_attempt_stream", Struct: grpcPkg + ".csAttempt", Field: "transportStream", Optional: true},
		},
		Consts:   map[string]any{"stream_id_known": uint8(1)},
		Optional: true,
	}, {
		// --inject-context: each client stream announced on the writer
		// goroutine before its HEADERS frame is encoded (grpc.c). grpc-go
		// 1.82 replaced originateStream(str, *headerFrame) with
		// clientHeaderHandler(*clientHeaders); one of them exists.
		Name:     "client headers",
		Symbol:   transport + ".(*loopyWriter).clientHeaderHandler",
		Entry:    "uprobe_grpc_announce",
		Fields:   headerFields(transport + ".clientHeaders"),
		Consts:   map[string]any{probes.ConnKnown: uint8(1)},
		Optional: true,
		Feature:  probes.FeatureInject,
	}, {
		Name:     "client headers (grpc-go 1.81 and older)",
		Symbol:   transport + ".(*loopyWriter).originateStream",
		Entry:    "uprobe_grpc_announce_orig",
		Fields:   headerFields(transport + ".headerFrame"),
		Consts:   map[string]any{probes.ConnKnown: uint8(1)},
		Optional: true,
		Feature:  probes.FeatureInject,
	}},
	Fields: []probes.Field{
		{Const: "off_status_s", Struct: "google.golang.org/grpc/internal/status.Status", Field: "s"},
		{Const: "off_spb_code", Struct: "google.golang.org/genproto/googleapis/rpc/status.Status", Field: "Code"},
	},
	Types: probes.ConnTypes,
	// The cancel (or timer) context newClientStream makes for each call,
	// told by its methods (grpc.c).
	Funcs: []probes.FuncAddr{
		{Const: "cancelctx_done", Symbol: "context.(*cancelCtx).Done"},
		{Const: "timerctx_deadline", Symbol: "context.(*timerCtx).Deadline"},
	},
	ReadsGoMaps: true,
	Tune:        tune,
	Shared:      []string{bpfMapGrpcAnnounceStats},
	PerPid:      []string{bpfMapCtxSpans, bpfMapInjectPending, bpfMapGrpcCalls, bpfMapGrpcCallCtxs},
	FeatureConsts: map[string]map[string]any{
		probes.FeatureInject: {"inject_enabled": uint8(1)},
	},
	Load:     loadBpf,
	Decoders: map[uint32]probes.Decoder{contract.EventGRPC: decode},
}

// headerFields are the fields the client headers hook reads from hdr, a
// *headerFrame or *clientHeaders, from the stream it belongs to and from
// the connection loopy writes to.
func headerFields(hdr string) []probes.Field {
	return append([]probes.Field{
		{Const: "off_hdr_stream_id", Struct: hdr, Field: "streamID"},
		{Const: "off_hdr_hf", Struct: hdr, Field: "hf"},
		{Const: "off_hdr_orphaned", Struct: hdr, Field: "onOrphaned"},
		{Const: "off_stream_ctx", Struct: transport + ".Stream", Field: "ctx"},
		{Const: "off_cs_ctx", Struct: grpcPkg + ".clientStream", Field: "ctx"},
		{Const: "off_loopy_conn", Struct: transport + ".loopyWriter", Field: "conn"},
	}, probes.ConnFields...)
}

// tune sets the layout switch of grpc-go 1.69 to 1.76 (see grpc.c).
func tune(b *inspect.Binary) map[string]any {
	minor := moduleMinor(b.Modules["google.golang.org/grpc"])
	if minor >= 69 && minor < 77 {
		return map[string]any{"stream_indirect": uint8(1)}
	}
	return nil
}

// moduleMinor returns 76 for "v1.76.0"; -1 when unparsable.
func moduleMinor(v string) int {
	rest, ok := strings.CutPrefix(v, "v1.")
	if !ok {
		return -1
	}
	minor, _, _ := strings.Cut(rest, ".")
	n, err := strconv.Atoi(minor)
	if err != nil {
		return -1
	}
	return n
}

func decode(raw []byte, t *probes.Target) (event.Event, error) {
	e, err := probes.View[bpfGrpcEvent](raw)
	if err != nil {
		return nil, fmt.Errorf("grpc %w", err)
	}
	ev := &event.GRPC{
		Process: t.Proc,
		Start:   t.Clock.Time(e.StartNs),
		End:     t.Clock.Time(e.EndNs),
		Server:  e.Side == 1,
		Method:  t.Text.String(e.Method[:], int(e.MethodLen), e.Cut != 0),
		// The probe records no cut bit for the target; one that fills
		// its buffer may have been cut.
		DialTarget: t.Text.String(e.Addr[:], int(e.AddrLen), int(e.AddrLen) >= len(e.Addr)),
		Code:       int(e.Code),
		Linked:     e.Link != 0,
		Cut:        e.Cut != 0,
	}
	ev.SpanContext = event.SpanContext{
		TraceID: e.Sc.TraceId, SpanID: e.Sc.SpanId, Parent: e.Sc.ParentSpanId,
		Flags: e.Sc.TraceFlags, Traceparent: event.TraceparentState(e.Sc.TpState),
	}
	ev.Stream = e.Stream
	if !ev.Server {
		ev.Conn = probes.ConnTuple(e.Conn.LocalIp, e.Conn.RemoteIp, e.Conn.LocalPort, e.Conn.RemotePort)
	}
	if n := int(e.IpLen); n == 4 || n == 16 {
		if ip, ok := netip.AddrFromSlice(e.Ip[:n]); ok {
			ev.Peer = netip.AddrPortFrom(ip.Unmap(), e.Port)
		}
	}
	return ev, nil
}

// AnnounceStats names the counters of the client headers hook
// (--inject-context), in the order of grpc.c's enum grpc_announce: what
// became of each client stream it saw.
var AnnounceStats = []struct {
	Name   string // AnnounceCounts' key
	Result string // "announced" or "skipped"
	Reason string
}{
	{"announced", "announced", "grpc"},
	{"app_traceparent", "skipped", "grpc_app_traceparent"},
	{"no_call", "skipped", "grpc_no_call"},
	{"not_tcp", "skipped", "grpc_not_tcp"},
	{"unchecked", "skipped", "grpc_unchecked"},
}

// AnnounceCounts returns the counters of AnnounceStats by name, summed over
// every target; nil when no gRPC probe was loaded.
func AnnounceCounts(m *probes.Manager) (map[string]uint64, error) {
	mp, err := m.Shared(bpfMapGrpcAnnounceStats)
	if err != nil || mp == nil {
		return nil, err
	}
	out := make(map[string]uint64, len(AnnounceStats))
	for slot, s := range AnnounceStats {
		n, err := probes.SumSlot(mp, uint32(slot))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", s.Name, err)
		}
		out[s.Name] = n
	}
	return out, nil
}
