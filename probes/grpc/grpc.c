//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * google.golang.org/grpc probes: two hits per RPC on each side.
 *
 * Server: (*Server).handleStream(t ServerTransport, stream) starts every RPC,
 * unary or streaming (t's data pointer in RCX, stream in RDI); the transport's
 * writeStatus(stream, st) (WriteStatus before grpc-go 1.6x) ends it with the
 * final status (stream in RBX, *status.Status in RCX). State is keyed by the
 * stream.
 *
 * Client: (*clientStream).newAttemptLocked(isTransparent) starts every call,
 * Invoke's included (cs in RAX); (*clientStream).finish(err) ends it (cs in
 * RAX, err in RBX/RCX). Both have the stream's own *clientStream, so the
 * state is keyed by it: any number of concurrent calls on one context stay
 * apart. newAttemptLocked runs on the caller's goroutine inside
 * newClientStream, once per attempt; only the first (cs.attempt still nil)
 * starts a span, a retry keeps it. It is where grpc-go's stats handlers
 * begin an RPC too. The method, the dial target and the parent (found up
 * cs.ctx, the per-stream context derived from the caller's) are read from
 * the stream.
 *
 * The client's connection: at finish, cs.attempt's transport (an
 * *http2Client) has the socket's two addresses (localAddr, remoteAddr), read
 * into the event at no extra hit.
 *
 * --inject-context, one more hit per client call, on the transport's writer
 * goroutine (loopy): (*loopyWriter).originateStream(str, hdr *headerFrame)
 * up to grpc-go 1.81, clientHeaderHandler(hdr *clientHeaders) from 1.82, run
 * once per stream before its HEADERS frame is encoded, with the stream id
 * already assigned (hdr.streamID) and the header fields grpc-go built
 * (hdr.hf, exactly what goes on the wire). The stream is hdr.onOrphaned's one
 * captured variable (the cleanup closure, {fn, s}); its context descends from
 * cs.ctx, which newAttemptLocked registered, so the call is found by
 * identity up the context chain, never by method or time. The announcement
 * inject_pending[{pid, stream id, connection}] is made before the frame can
 * be written; the sk_msg program consumes it. The connection is the one loopy
 * writes to (loopyWriter.conn), announced only when it is a plain
 * *net.TCPConn. A call whose headers already carry a traceparent (the
 * application set it) is not announced.
 */
#include "types.h"
#include "go_abi.h"
#include "go_types.h"
#include "go_map.h"
#include "trace_context.h"
#include "propagation.h"
#include "events.h"
#include "conn.h"
/* The announcement map shared with net/http's probe and the socket
 * programs (--inject-context). */
#include "../nethttp/inject.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define METHOD_MAX 128
#define ADDR_MAX 64

volatile const __u64 off_stream_method = 0;  /* transport.Stream.method */
volatile const __u64 off_stream_ctx = 0;     /* transport.Stream.ctx */
/* transport.Stream.id (offset 0 in older releases): stream_id_known says
 * it was resolved. */
volatile const __u64 off_stream_id = 0;
volatile const __u8 stream_id_known = 0;
/* csAttempt.s, .transportStream from grpc-go 1.7x: the attempt's
 * *transport.Stream or *ClientStream (which starts with its Stream, by
 * pointer where stream_indirect says so). */
volatile const __u64 off_attempt_stream = 0;
volatile const __u64 off_server_peer = 0;    /* http2Server.peer (peer.Peer, Addr first) */
volatile const __u64 off_status_s = 0;       /* internal/status.Status.s */
volatile const __u64 off_spb_code = 0;       /* genproto status.Status.Code */
volatile const __u64 off_cc_target = 0;      /* ClientConn.target */
volatile const __u64 off_cs_ctx = 0;         /* clientStream.ctx */
volatile const __u64 off_cs_callhdr = 0;     /* clientStream.callHdr */
volatile const __u64 off_callhdr_method = 0; /* transport.CallHdr.Method */
volatile const __u64 off_cs_cc = 0;          /* clientStream.cc */
volatile const __u64 off_cs_attempt = 0;     /* clientStream.attempt */
volatile const __u64 off_cs_finished = 0;    /* clientStream.finished */
volatile const __u64 off_attempt_transport = 0; /* csAttempt.t, .transport from 1.7x */
volatile const __u64 off_h2c_local = 0;      /* http2Client.localAddr */
volatile const __u64 off_h2c_remote = 0;     /* http2Client.remoteAddr */
/* --inject-context, the client headers hook: */
volatile const __u8 inject_enabled = 0;
volatile const __u64 off_hdr_stream_id = 0;  /* headerFrame/clientHeaders.streamID */
volatile const __u64 off_hdr_hf = 0;         /* .hf */
volatile const __u64 off_hdr_orphaned = 0;   /* .onOrphaned */
volatile const __u64 off_loopy_conn = 0;     /* loopyWriter.conn, the net.Conn frames go to */
/* grpc-go 1.69 to 1.76: handleStream's *ServerStream embeds *Stream (a
 * pointer, its first field); before, it was handed a *Stream, and from 1.77
 * ServerStream embeds Stream by value at offset 0. */
volatile const __u8 stream_indirect = 0;

enum grpc_side {
	GRPC_SERVER = 1,
	GRPC_CLIENT = 2,
};

struct grpc_event {
	struct event_header hdr;
	__u64 start_ns;
	__u64 end_ns;
	struct span_context sc;
	__s32 code;    /* gRPC status code; -1 unknown */
	__u8 side;     /* enum grpc_side */
	__u8 link;     /* client: 1 when a parent span was found in-process */
	__u8 cut;      /* 1: method cut */
	__u8 ip_len;   /* server: peer IP length (4 or 16) */
	__u16 method_len;
	__u16 addr_len; /* client: target length */
	__u16 port;     /* server: peer port */
	__u8 _pad[2];
	__u8 ip[16];
	struct conn_tuple conn; /* client: the call's connection; zero unknown */
	__u32 stream;           /* the call's HTTP/2 stream id; 0 unknown */
	__u32 _pad2;
	__u8 method[METHOD_MAX];
	__u8 addr[ADDR_MAX];
};

struct grpc_state {
	__u64 start_ns;
	__u64 ctx; /* server: the stream's context object, registered in ctx_spans */
	__u8 link;
	__u8 _pad[7];
	struct span_context sc;
	struct grpc_event ev; /* filled as far as known at the start */
};

struct grpc_key {
	__u32 pid;
	__u32 _pad;
	__u64 ptr; /* server: the stream; client: the *clientStream */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct grpc_key);
	__type(value, struct grpc_state);
} grpc_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct grpc_state);
} grpc_scratch SEC(".maps");

/* --inject-context: the calls whose stream may still be announced, by
 * cs.ctx (a context made for each call, so one per stream). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct grpc_key);
	__type(value, __u64); /* the *clientStream */
} grpc_call_ctxs SEC(".maps");

/* Outcomes of the client headers hook, by slot (enum grpc_announce). */
enum grpc_announce {
	ANNOUNCED = 0,          /* inject_pending written */
	ANNOUNCE_APP_TP = 1,    /* the call's headers carry a traceparent already */
	ANNOUNCE_NO_CALL = 2,   /* no call of newAttemptLocked's for the stream: one grpc-go opens itself
	                         * (a health check), started before attach, or evicted */
	ANNOUNCE_NO_CONN = 3,   /* not a plain TCP connection (TLS, a wrapper), or unreadable */
	ANNOUNCE_UNCHECKED = 4, /* more header fields than the scan covers */
	ANNOUNCE_MAX = 8,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ANNOUNCE_MAX);
	__type(key, __u32);
	__type(value, __u64);
} grpc_announce_stats SEC(".maps");

const struct grpc_event *unused_grpc_event __attribute__((unused));

static __always_inline struct grpc_state *scratch(void)
{
	__u32 zero = 0;
	struct grpc_state *st = bpf_map_lookup_elem(&grpc_scratch, &zero);
	if (st)
		__builtin_memset(st, 0, sizeof(*st));
	return st;
}

/*
 * The incoming metadata is a context value (metadata.MD, a
 * map[string][]string) somewhere up the stream's context chain. Its key
 * type cannot be named in a stripped binary, so each valueCtx's value is
 * tried as a map: a value that is not one fails the exact key match.
 */
#define MD_WALK_MAX 4

static __always_inline void read_traceparent(struct span_context *sc, __u64 c)
{
	struct map_search s = {
		.key = "traceparent",
		.key_len = 11,
	};
	char tp[TRACEPARENT_LEN + 8] = {};
	__u8 cut = 0;
	sc->tp_state = TP_NONE;
	for (int i = 0; i < MD_WALK_MAX; i++) {
		if (!c)
			return;
		/* valueCtx{Context; key, val any}: val's data word at 40. */
		__u64 md = go_word_at((void *)(c + 40));
		__u32 n = md ? go_header_get(md, &s, tp, sizeof(tp), &cut) : 0;
		if (n > 0 || cut) {
			sc->tp_state = cut ? TP_MALFORMED : traceparent_parse(sc, tp, n);
			return;
		}
		c = go_word_at((void *)(c + 8));
	}
}

SEC("uprobe/grpc_handle_stream")
int uprobe_grpc_server_entry(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	struct grpc_state *st = scratch();
	if (!st)
		return 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 transport = GO_ARG3(ctx);
	__u64 stream = GO_ARG4(ctx);
	__u64 base = stream_indirect ? go_word_at((void *)stream) : stream;
	st->start_ns = bpf_ktime_get_ns();
	st->ctx = go_word_at((void *)(base + off_stream_ctx + 8));

	struct go_string m = {};
	go_string_at(&m, (void *)(base + off_stream_method));
	st->ev.method_len = go_string_copy(st->ev.method, METHOD_MAX, m, &st->ev.cut);
	st->ev.stream = 0;
	if (stream_id_known)
		bpf_probe_read_user(&st->ev.stream, sizeof(st->ev.stream), (void *)(base + off_stream_id));

	if (off_server_peer) {
		__u64 addr = go_word_at((void *)(transport + off_server_peer + 8));
		struct go_slice ip = {};
		if (addr && bpf_probe_read_user(&ip, sizeof(ip), (void *)addr) == 0 && (ip.len == 4 || ip.len == 16)) {
			st->ev.ip_len = ip.len;
			bpf_probe_read_user(st->ev.ip, ip.len & 16 ? 16 : 4, ip.ptr);
			st->ev.port = go_word_at((void *)(addr + off_tcpaddr_port));
		}
	}

	read_traceparent(&st->sc, st->ctx);
	if (st->sc.tp_state != TP_VALID) {
		random_bytes(st->sc.trace_id, 16);
		__builtin_memset(st->sc.parent_span_id, 0, 8);
		st->sc.trace_flags = 1;
	}
	random_bytes(st->sc.span_id, 8);
	if (st->ctx) {
		struct ptr_key ck = {.pid = pid, .ptr = st->ctx};
		bpf_map_update_elem(&ctx_spans, &ck, &st->sc, BPF_ANY);
	}
	struct grpc_key k = {.pid = pid, .ptr = stream};
	bpf_map_update_elem(&grpc_calls, &k, st, BPF_ANY);
	return 0;
}

/* The code of a *status.Status, -1 when unreadable. */
static __always_inline __s32 status_code(__u64 status)
{
	if (!status || !off_spb_code)
		return -1;
	__u64 spb = go_word_at((void *)(status + off_status_s));
	if (!spb)
		return 0; /* a nil proto is OK */
	__s32 code = -1;
	if (bpf_probe_read_user(&code, sizeof(code), (void *)(spb + off_spb_code)) != 0)
		return -1;
	return code;
}

static __always_inline void fill(struct grpc_event *e, struct grpc_state *st, __u32 pid, __u8 side, __s32 code)
{
	__builtin_memcpy(e, &st->ev, sizeof(*e));
	e->hdr.kind = EVENT_GRPC;
	e->hdr.pid = pid;
	e->start_ns = st->start_ns;
	e->end_ns = bpf_ktime_get_ns();
	e->sc = st->sc;
	e->side = side;
	e->link = st->link;
	e->code = code;
}

static __always_inline void emit(struct grpc_state *st, __u32 pid, __u8 side, __s32 code)
{
	struct grpc_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_LOST);
		return;
	}
	fill(e, st, pid, side, code);
	event_submit(e);
}

SEC("uprobe/grpc_write_status")
int uprobe_grpc_server_status(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct grpc_key k = {.pid = pid, .ptr = GO_ARG2(ctx)};
	struct grpc_state *st = bpf_map_lookup_elem(&grpc_calls, &k);
	if (!st) {
		stat_inc(STAT_NO_ENTRY);
		return 0;
	}
	if (st->ctx) {
		struct ptr_key ck = {.pid = pid, .ptr = st->ctx};
		bpf_map_delete_elem(&ctx_spans, &ck);
	}
	emit(st, pid, GRPC_SERVER, status_code(GO_ARG3(ctx)));
	bpf_map_delete_elem(&grpc_calls, &k);
	return 0;
}

/* The connection of an *http2Client, from its two addresses (net.Addr
 * interfaces holding *net.TCPAddr, read by conn.h): 0 when read. */
static __always_inline int transport_conn(struct conn_tuple *c, __u64 t)
{
	if (!t || !off_h2c_local || !off_h2c_remote)
		return -1;
	struct conn_tuple tmp = {};
	if (!go_tcp_addr(t + off_h2c_local, tmp.local_ip, &tmp.local_port) ||
	    !go_tcp_addr(t + off_h2c_remote, tmp.remote_ip, &tmp.remote_port))
		return -1;
	*c = tmp;
	return 0;
}

/* The connection a call's (last) attempt went out on, left zero when
 * unknown: cs.attempt.transport, a ClientTransport holding *http2Client. */
static __always_inline void call_conn(struct conn_tuple *c, __u64 cs)
{
	if (!off_attempt_transport)
		return;
	__u64 a = go_word_at((void *)(cs + off_cs_attempt));
	if (a)
		transport_conn(c, go_word_at((void *)(a + off_attempt_transport + 8)));
}

/* The HTTP/2 stream id of a call's (last) attempt, 0 when unknown: client
 * stream ids are odd, so anything else read is not one. */
static __always_inline __u32 call_stream(__u64 cs)
{
	if (!stream_id_known || !off_attempt_stream)
		return 0;
	__u64 a = go_word_at((void *)(cs + off_cs_attempt));
	__u64 s = a ? go_word_at((void *)(a + off_attempt_stream)) : 0;
	__u64 base = stream_indirect && s ? go_word_at((void *)s) : s;
	__u32 id = 0;
	if (!base || bpf_probe_read_user(&id, sizeof(id), (void *)(base + off_stream_id)) != 0 || !(id & 1))
		return 0;
	return id;
}

/* The addresses of context.(*cancelCtx).Done and (*timerCtx).Deadline
 * (0 when unknown: a PIE whose load bias was not found). */
volatile const __u64 cancelctx_done = 0;
volatile const __u64 timerctx_deadline = 0;

/* An itab is {inter, type, hash, _, fun...}: the methods from offset 24, in
 * name order; context.Context's are Deadline, Done, Err, Value. */
#define ITAB_FUN 24

/* Whether the context interface whose itab is given holds a
 * *context.cancelCtx or a *context.timerCtx: told by its own methods (Done
 * of cancelCtx, Deadline of timerCtx), which a stripped binary still has. */
static __always_inline int cancel_ctx(__u64 itab)
{
	__u64 fun[2] = {};
	if (!itab || bpf_probe_read_user(fun, sizeof(fun), (void *)(itab + ITAB_FUN)) != 0)
		return 0;
	return (cancelctx_done && fun[1] == cancelctx_done) || (timerctx_deadline && fun[0] == timerctx_deadline);
}

/* The call registered under context c, when it still has c as its cs.ctx. */
static __always_inline __u64 call_at(__u32 pid, __u64 c)
{
	struct grpc_key k = {.pid = pid, .ptr = c};
	__u64 *cs = bpf_map_lookup_elem(&grpc_call_ctxs, &k);
	if (!cs || go_word_at((void *)(*cs + off_cs_ctx + 8)) != c)
		return 0;
	return *cs;
}

/*
 * The *clientStream of a transport stream whose context is the interface
 * (itab, c); 0 when not found. Between the stream's context and cs.ctx
 * grpc-go puts only value contexts (peer, RPC info, outgoing metadata, a
 * trace), and cs.ctx is the cancel (or timer) context newClientStream made
 * for the call: so the first cancel or timer context up the chain is cs.ctx,
 * and only it is looked up. An entry left by a call that never finished
 * cannot then be matched by a value context reusing its address. Without
 * the method addresses each context up the chain is looked up, nearest
 * first.
 */
static __always_inline __u64 call_of_ctx(__u32 pid, __u64 itab, __u64 c)
{
	int typed = cancelctx_done && timerctx_deadline;
	for (int i = 0; i < CTX_WALK_MAX; i++) {
		if (!c || !itab)
			return 0;
		if (!typed) {
			__u64 cs = call_at(pid, c);
			if (cs)
				return cs;
		} else if (cancel_ctx(itab)) {
			return call_at(pid, c);
		}
		/* Every context type of package context embeds its parent
		 * Context first: (itab, data) at offset 0. */
		__u64 parent[2] = {};
		if (bpf_probe_read_user(parent, sizeof(parent), (void *)c) != 0)
			return 0;
		itab = parent[0];
		c = parent[1];
	}
	return 0;
}

static __always_inline void announce_count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&grpc_announce_stats, &slot);
	if (v)
		*v += 1;
}

/* Header fields scanned for an application's own traceparent. */
#define HF_MAX 48

struct hpack_field {
	struct go_string name;
	struct go_string value;
	__u64 sensitive;
};

/* 1 when hf (a []hpack.HeaderField) has a "traceparent" field, 0 when it
 * has none, -1 when it is longer than the scan covers. */
static __always_inline int hf_has_traceparent(struct go_slice *hf)
{
	if (hf->len < 0 || hf->len > HF_MAX)
		return -1;
	for (int i = 0; i < HF_MAX; i++) {
		if (i >= hf->len)
			return 0;
		struct go_string n = {};
		if (bpf_probe_read_user(&n, sizeof(n), (void *)((__u64)hf->ptr + i * sizeof(struct hpack_field))) != 0)
			return -1;
		if (n.len != 11)
			continue;
		char b[11] = {};
		if (bpf_probe_read_user(b, sizeof(b), n.ptr) != 0)
			return -1;
		/* Metadata keys go out lowercased; compare without case anyway. */
		const char want[] = "traceparent";
		int same = 1;
		for (int j = 0; j < 11; j++)
			if ((b[j] | 0x20) != want[j])
				same = 0;
		if (same)
			return 1;
	}
	return 0;
}

/* l: the *loopyWriter; hdr: the stream's *headerFrame (originateStream)
 * or *clientHeaders. */
static __always_inline int announce_stream(__u64 l, __u64 hdr)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct go_slice hf = {};
	__u32 sid = 0;
	if (!hdr || bpf_probe_read_user(&hf, sizeof(hf), (void *)(hdr + off_hdr_hf)) != 0 ||
	    bpf_probe_read_user(&sid, sizeof(sid), (void *)(hdr + off_hdr_stream_id)) != 0 || !(sid & 1)) {
		announce_count(ANNOUNCE_NO_CALL);
		return 0;
	}
	int tp = hf_has_traceparent(&hf);
	if (tp != 0) {
		announce_count(tp > 0 ? ANNOUNCE_APP_TP : ANNOUNCE_UNCHECKED);
		return 0;
	}
	/* onOrphaned is the cleanup closure {fn, s}: the transport stream. */
	__u64 s = go_word_at((void *)(go_word_at((void *)(hdr + off_hdr_orphaned)) + 8));
	__u64 base = stream_indirect ? go_word_at((void *)s) : s;
	__u64 sctx[2] = {};
	if (s)
		bpf_probe_read_user(sctx, sizeof(sctx), (void *)(base + off_stream_ctx));
	__u64 cs = call_of_ctx(pid, sctx[0], sctx[1]);
	struct grpc_key k = {.pid = pid, .ptr = cs};
	struct grpc_state *st = cs ? bpf_map_lookup_elem(&grpc_calls, &k) : 0;
	if (!st) {
		announce_count(ANNOUNCE_NO_CALL);
		return 0;
	}
	/* The connection loopy writes to: only a plain *net.TCPConn (a TLS
	 * conn's bytes are encrypted before the socket sees them). */
	struct inject_key ik = {.pid = pid, .stream = sid};
	__u64 conn[2] = {};
	if (bpf_probe_read_user(conn, sizeof(conn), (void *)(l + off_loopy_conn)) != 0 ||
	    !go_tcp_conn(conn[0], conn[1], &ik.conn)) {
		announce_count(ANNOUNCE_NO_CONN);
		return 0;
	}
	struct inject_ids ids = {.flags = st->sc.trace_flags};
	__builtin_memcpy(ids.trace_id, st->sc.trace_id, 16);
	__builtin_memcpy(ids.span_id, st->sc.span_id, 8);
	bpf_map_update_elem(&inject_pending, &ik, &ids, BPF_ANY);
	st->ev.conn = ik.conn;
	announce_count(ANNOUNCED);
	return 0;
}

SEC("uprobe/grpc_new_attempt")
int uprobe_grpc_client_entry(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	__u64 cs = GO_ARG1(ctx);
	/* A retry: the first attempt started the span. */
	if (!cs || go_word_at((void *)(cs + off_cs_attempt)))
		return 0;
	struct grpc_state *st = scratch();
	if (!st)
		return 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	st->start_ns = bpf_ktime_get_ns();

	__u64 hdr = go_word_at((void *)(cs + off_cs_callhdr));
	struct go_string m = {};
	if (hdr)
		go_string_at(&m, (void *)(hdr + off_callhdr_method));
	st->ev.method_len = go_string_copy(st->ev.method, METHOD_MAX, m, &st->ev.cut);
	__u64 cc = go_word_at((void *)(cs + off_cs_cc));
	if (cc && off_cc_target) {
		struct go_string t = {};
		__u8 cut = 0;
		go_string_at(&t, (void *)(cc + off_cc_target));
		st->ev.addr_len = go_string_copy(st->ev.addr, ADDR_MAX, t, &cut);
	}

	struct span_context parent = {};
	if (ctx_find(pid, go_word_at((void *)(cs + off_cs_ctx + 8)), &parent)) {
		st->link = 1;
		__builtin_memcpy(st->sc.trace_id, parent.trace_id, 16);
		__builtin_memcpy(st->sc.parent_span_id, parent.span_id, 8);
		st->sc.trace_flags = parent.trace_flags;
		st->sc.tp_state = parent.tp_state;
	} else {
		random_bytes(st->sc.trace_id, 16);
		st->sc.trace_flags = 1;
	}
	random_bytes(st->sc.span_id, 8);
	/* A new stream: whatever an earlier one at this address left (a call
	 * whose creation failed ends without finish) is replaced. */
	struct grpc_key k = {.pid = pid, .ptr = cs};
	bpf_map_update_elem(&grpc_calls, &k, st, BPF_ANY);
	if (inject_enabled) {
		struct grpc_key ck = {.pid = pid, .ptr = go_word_at((void *)(cs + off_cs_ctx + 8))};
		if (ck.ptr)
			bpf_map_update_elem(&grpc_call_ctxs, &ck, &cs, BPF_ANY);
	}
	return 0;
}

/* The code an error returned to a gRPC client carries: 0 for nil or
 * io.EOF (finish's "success"), else the code of the *status.Error. grpc-go
 * hands clients status errors only; io.EOF, an errors.errorString, is told
 * apart by its shape: a string of 3 bytes "EOF". */
static __always_inline __s32 error_code(__u64 itab, __u64 data)
{
	if (!itab || !data)
		return 0;
	struct go_string s = {};
	if (go_string_at(&s, (void *)data) == 0 && s.len == 3) {
		char b[3] = {};
		if (bpf_probe_read_user(b, 3, s.ptr) == 0 && b[0] == 'E' && b[1] == 'O' && b[2] == 'F')
			return 0;
	}
	/* *status.Error{s *Status} */
	return status_code(go_word_at((void *)data));
}

SEC("uprobe/grpc_client_finish")
int uprobe_grpc_client_finish(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 cs = GO_ARG1(ctx);
	struct grpc_key k = {.pid = pid, .ptr = cs};
	struct grpc_state *st = bpf_map_lookup_elem(&grpc_calls, &k);
	if (!st) {
		/* A stream's context watcher calls finish a second time, once
		 * cs.finished is set: already reported. Unfinished, the start
		 * was not seen (attached mid-call, or evicted). */
		__u8 finished = 1;
		if (off_cs_finished)
			bpf_probe_read_user(&finished, 1, (void *)(cs + off_cs_finished));
		if (!finished)
			stat_inc(STAT_NO_ENTRY);
		return 0;
	}
	struct grpc_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_LOST);
		bpf_map_delete_elem(&grpc_calls, &k);
		return 0;
	}
	fill(e, st, pid, GRPC_CLIENT, error_code(GO_ARG2(ctx), GO_ARG3(ctx)));
	/* Announced: the connection its headers went out on is known. */
	if (!e->conn.local_port)
		call_conn(&e->conn, cs);
	e->stream = call_stream(cs);
	/* Two finishes racing (the watcher and the caller): only the one that
	 * removes the state reports the call. */
	if (bpf_map_delete_elem(&grpc_calls, &k) != 0) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	if (inject_enabled) {
		struct grpc_key ck = {.pid = pid, .ptr = go_word_at((void *)(cs + off_cs_ctx + 8))};
		bpf_map_delete_elem(&grpc_call_ctxs, &ck);
	}
	event_submit(e);
	return 0;
}

SEC("uprobe/grpc_announce")
int uprobe_grpc_announce(struct pt_regs *ctx)
{
	/* clientHeaderHandler(l, hdr) */
	stat_inc(STAT_HITS);
	return announce_stream(GO_ARG1(ctx), GO_ARG2(ctx));
}

SEC("uprobe/grpc_announce_orig")
int uprobe_grpc_announce_orig(struct pt_regs *ctx)
{
	/* originateStream(l, str, hdr), grpc-go 1.81 and older */
	stat_inc(STAT_HITS);
	return announce_stream(GO_ARG1(ctx), GO_ARG3(ctx));
}
