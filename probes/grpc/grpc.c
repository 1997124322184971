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
 */
#include "types.h"
#include "go_abi.h"
#include "go_types.h"
#include "go_map.h"
#include "trace_context.h"
#include "propagation.h"
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define METHOD_MAX 128
#define ADDR_MAX 64

volatile const __u64 off_stream_method = 0;  /* transport.Stream.method */
volatile const __u64 off_stream_ctx = 0;     /* transport.Stream.ctx */
volatile const __u64 off_server_peer = 0;    /* http2Server.peer (peer.Peer, Addr first) */
volatile const __u64 off_tcpaddr_port = 24;  /* net.TCPAddr.Port */
volatile const __u64 off_status_s = 0;       /* internal/status.Status.s */
volatile const __u64 off_spb_code = 0;       /* genproto status.Status.Code */
volatile const __u64 off_cc_target = 0;      /* ClientConn.target */
volatile const __u64 off_cs_ctx = 0;         /* clientStream.ctx */
volatile const __u64 off_cs_callhdr = 0;     /* clientStream.callHdr */
volatile const __u64 off_callhdr_method = 0; /* transport.CallHdr.Method */
volatile const __u64 off_cs_cc = 0;          /* clientStream.cc */
volatile const __u64 off_cs_attempt = 0;     /* clientStream.attempt */
volatile const __u64 off_cs_finished = 0;    /* clientStream.finished */
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
	/* Two finishes racing (the watcher and the caller): only the one that
	 * removes the state reports the call. */
	if (bpf_map_delete_elem(&grpc_calls, &k) != 0) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	event_submit(e);
	return 0;
}
