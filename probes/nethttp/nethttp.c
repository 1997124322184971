//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * net/http server probe.
 *
 * Hooks net/http.serverHandler.ServeHTTP, through which every request served
 * by an http.Server passes: one uprobe at its entry and one at each RET
 * instruction, so a request costs exactly two probe hits whatever its headers.
 *
 * ServeHTTP(sh serverHandler, rw ResponseWriter, req *Request) receives, in
 * Go's register ABI: sh.srv in RAX, rw's itab in RBX, rw's data in RCX and req
 * in RDI. For HTTP/1.x rw is a *response; for HTTP/2 served by net/http's
 * own server its data word points to a struct whose one field points to the
 * writer's state (http2responseWriter up to Go 1.26; from 1.27 a wrapper
 * holding one pointer, stored in the interface directly, to
 * internal/http2's responseWriter).
 */
#include "types.h"
#include "go_abi.h"
#include "go_types.h"
#include "go_map.h"
#include "go_object.h"
#include "trace_context.h"
#include "events.h"
#include "conn.h"
#include "inject.h"
#include "propagation.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define METHOD_MAX 16
#define PATH_MAX_ 128
#define ROUTE_MAX 128
#define HOST_MAX 64
#define REMOTE_MAX 64
#define TP_MAX 64

/* Bits of http_server_event.cut: which strings were longer than their buffer. */
enum cut_bits {
	CUT_METHOD = 1,
	CUT_PATH = 2,
	CUT_ROUTE = 4,
	CUT_HOST = 8,
	CUT_REMOTE = 16,
};

struct http_server_event {
	struct event_header hdr;
	__u64 start_ns; /* CLOCK_MONOTONIC */
	__u64 end_ns;
	struct span_context sc;
	__u64 status; /* with status_read, 0 when the handler wrote nothing (net/http then sends 200) */
	__u64 proto_major;
	__u64 proto_minor;
	__u16 method_len;
	__u16 path_len;
	__u16 route_len;
	__u16 host_len;
	__u16 remote_len;
	__u8 cut;
	__u8 status_read; /* 1: status comes from the writer (0 there means 200) */
	__u8 panicked;    /* 1: the handler panicked and net/http ended the request */
	__u8 _pad[3];
	__u32 stream; /* HTTP/2: the request's stream id; 0 for HTTP/1.x or unknown */
	__u32 _pad2;
	__u8 method[METHOD_MAX];
	__u8 path[PATH_MAX_];
	__u8 route[ROUTE_MAX];
	__u8 host[HOST_MAX];
	__u8 remote[REMOTE_MAX];
};

/* Field offsets of this target, from DWARF or the generated table. */
volatile const __u64 off_req_method = 0;
volatile const __u64 off_req_url = 16;
volatile const __u64 off_req_proto_major = 40;
volatile const __u64 off_req_proto_minor = 48;
volatile const __u64 off_req_header = 56;
volatile const __u64 off_req_host = 128;
volatile const __u64 off_req_remote = 176;
volatile const __u64 off_req_pattern = 0; /* 0: this Go has no Request.Pattern */
volatile const __u64 off_url_path = 56;
volatile const __u64 off_resp_status = 0; /* 0: unknown, status not read */
volatile const __u64 off_h2rws_req = 0;     /* Go ≤ 1.26: http2responseWriterState.req, a *Request */
volatile const __u64 off_h2rws_status = 0;  /* Go ≤ 1.26: http2responseWriterState.status; 0: unknown */
volatile const __u64 off_h2rws2_req = 0;    /* Go ≥ 1.27: internal/http2.responseWriterState.req, a ServerRequest */
volatile const __u64 off_h2rws2_status = 0; /* Go ≥ 1.27: internal/http2.responseWriterState.status; 0: unknown */
volatile const __u64 off_h2sreq_url = 0;    /* Go ≥ 1.27: internal/http2.ServerRequest.URL */
/* The request's stream: http2responseWriterState.stream (a *http2stream,
 * offset 0 in every release, hence the id offsets, never 0, say whether
 * known) and http2stream.id; the same in internal/http2 from Go 1.27. */
volatile const __u64 off_h2rws_stream = 0;
volatile const __u64 off_h2stream_id = 0;
volatile const __u64 off_h2rws2_stream = 0;
volatile const __u64 off_h2stream2_id = 0;
volatile const __u64 off_req_ctx = 232;         /* Request.ctx, an interface */
volatile const __u64 off_url_scheme = 0;
volatile const __u64 off_url_host = 40;
volatile const __u64 off_response_status_code = 16; /* Response.StatusCode */
volatile const __u64 off_pconn_conn = 0;            /* persistConn.conn, a net.Conn */
/* net/http's HTTP/2 client: bundled (http2ClientConn, http2clientStream)
 * up to Go 1.26, net/http/internal/http2 (ClientConn, clientStream) from 1.27. */
volatile const __u64 off_h2cc_tconn = 0; /* ClientConn.tconn, a net.Conn */
volatile const __u64 off_h2cs_cc = 0;    /* clientStream.cc */
volatile const __u64 off_h2cs_id = 0;    /* clientStream.ID, a uint32 */
volatile const __u64 off_g_goid = 152;
volatile const __u64 off_g_parent_goid = 0;
/* Panics (see uprobe_recovery). */
volatile const __u64 off_g_stack = 0;
volatile const __u64 off_stack_hi = 8;
volatile const __u64 off_g_panic = 0;    /* g._panic */
volatile const __u64 off_panic_sp = 0;   /* Go >= 1.22: _panic.sp; 0 before */
volatile const __u64 off_g_sigcode0 = 0; /* Go 1.21 passes the sp in g.sigcode0 */
volatile const __u64 off_resp_cw = 0;    /* response.cw, a chunkWriter */
volatile const __u64 off_cw_wrote_header = 0;
volatile const __u64 off_h2rws_sent_header = 0;
volatile const __u64 off_h2rws2_sent_header = 0;
/* Set when the runtime.recovery hook is attached: entry records depths. */
volatile const __u8 track_panics = 0;
/* Goroutine ancestry: links calls made from goroutines that dropped the
 * request's context, at one probe hit per `go` statement. Off by default. */
volatile const __u8 track_goroutines = 0;
/* --inject-context: announce each outgoing request to the socket programs. */
volatile const __u8 inject_enabled = 0;

/* A request between entry and return, keyed by goroutine. */
struct server_key {
	__u32 pid;
	__u32 _pad;
	__u64 g;
};

struct server_req {
	__u64 start_ns;
	__u64 req;
	__u64 resp;
	__u64 ctx;  /* the request's context object, registered in ctx_spans */
	__u64 goid; /* registered in goid_spans when tracking goroutines */
	/* g.stack.hi minus SP at entry: where ServeHTTP's frame sits, measured
	 * from the stack's top so that stack copies do not change it. */
	__u64 depth;
	struct span_context sc;
};

/* Bounded and LRU: a goroutine that never returns is evicted, never leaked.
 * One map for the node (Spec.PerPid), keyed by pid first, like every map
 * here with a pid in its key: sized for the requests in flight on the whole
 * node, all targets together (a busy node evicts its oldest, whose returns
 * then count as orphan returns). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, struct server_key);
	__type(value, struct server_req);
} server_reqs SEC(".maps");

/* Scratch for the request being entered (struct too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct server_req);
} server_scratch SEC(".maps");

/*
 * In-process propagation. A server span is findable, while its handler runs,
 * by the request's context object (most code passes r.Context(), or one
 * derived from it, to its outgoing requests: free to follow) and, when
 * goroutine tracking is on, by goroutine id (inherited by goroutines the
 * handler starts). One map for the node: 65,536 goroutines of requests
 * (registered only with goroutine tracking) on all targets together.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ptr_key);
	__type(value, struct span_context);
} goid_spans SEC(".maps");

/* How a client span found its parent. */
enum parent_link {
	LINK_NONE = 0,
	LINK_CONTEXT = 1,
	LINK_GOROUTINE = 2,
};

static __always_inline __u64 req_ctx(__u64 req)
{
	return go_word_at((void *)(req + off_req_ctx + 8));
}

/* The *http.Request fields the server and client programs read, in one
 * call (go_object.h). */
static __always_inline struct go_object *request_read(__u64 req)
{
	struct go_field f[] = {
		{off_req_method, 16},
		{off_req_url, 8},
		{off_req_proto_major, 8},
		{off_req_proto_minor, 8},
		{off_req_header, 8},
		{off_req_host, 16},
		{off_req_remote, 16},
		{off_req_ctx, 16},
		{off_req_pattern, off_req_pattern ? 16 : 0},
	};
	return go_object_read(GO_OBJ_REQUEST, req, GO_FIELDS(f));
}

/* The url.URL fields the programs read, in one call. */
static __always_inline struct go_object *url_read(__u64 url)
{
	struct go_field f[] = {
		{off_url_scheme, 16},
		{off_url_host, 16},
		{off_url_path, 16},
	};
	return go_object_read(GO_OBJ_URL, url, GO_FIELDS(f));
}

static __always_inline __u64 current_goid(struct pt_regs *ctx)
{
	return go_word_at((void *)(GO_G(ctx) + off_g_goid));
}

struct http_client_event {
	struct event_header hdr;
	__u64 start_ns;
	__u64 end_ns;
	struct span_context sc;
	__u64 status;   /* Response.StatusCode; 0 without a response */
	__u64 err_itab; /* non-zero when roundTrip returned an error: its itab */
	__u16 method_len;
	__u16 scheme_len;
	__u16 host_len;
	__u16 path_len;
	__u8 cut;
	__u8 link; /* enum parent_link */
	__u8 _pad[6];
	struct conn_tuple conn; /* the connection it went out on; zero: unknown */
	__u32 stream;           /* HTTP/2: its stream id on conn; 0 for HTTP/1.x or unknown */
	__u32 _pad2;
	__u8 method[METHOD_MAX];
	__u8 scheme[16];
	__u8 host[HOST_MAX];
	__u8 path[PATH_MAX_];
};

struct client_req {
	__u64 start_ns;
	__u64 req;
	__u8 link;
	__u8 _pad[7];
	struct span_context sc;
	struct conn_tuple conn; /* set by uprobe_client_conn, uprobe_h2_client */
	__u32 stream;           /* set by uprobe_h2_headers */
	__u32 _pad2;
};

/* The node's client requests in flight, as server_reqs. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, struct server_key);
	__type(value, struct client_req);
} client_reqs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct client_req);
} client_scratch SEC(".maps");

/*
 * --inject-context, HTTP/2: a request's ids between its RoundTrip (on the
 * caller's goroutine, where its client span is) and the writing of its
 * header block (on the stream's own goroutine, where its stream id is), by
 * the request pointer both receive. LRU: a request that never gets to
 * write is evicted.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ptr_key);
	__type(value, struct inject_ids);
} h2_requests SEC(".maps");

/*
 * HTTP/2: the caller's goroutine (its client_reqs key) of a request
 * between its RoundTrip and the writing of its header block, by the
 * request pointer both receive, so the stream's id reaches the client
 * event (same-node linking pairs by connection and stream). LRU, like
 * h2_requests.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ptr_key);
	__type(value, struct server_key);
} h2_callers SEC(".maps");

/* Force the event types into BTF so bpf2go can generate their Go twins. */
const struct http_server_event *unused_http_server_event __attribute__((unused));
const struct http_client_event *unused_http_client_event __attribute__((unused));

static __always_inline void read_traceparent(struct server_req *r, __u64 hdr)
{
	struct map_search s = {
		.key = "Traceparent",
		.key_len = 11,
	};
	char tp[TP_MAX] = {};
	__u8 cut = 0;
	__u32 n = go_header_get(hdr, &s, tp, TP_MAX, &cut);
	if (n == 0 && !cut) {
		r->sc.tp_state = TP_NONE;
		return;
	}
	r->sc.tp_state = cut ? TP_MALFORMED : traceparent_parse(&r->sc, tp, n);
}

SEC("uprobe/server_handler_serve_http")
int uprobe_server_entry(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	__u32 zero = 0;
	struct server_req *r = bpf_map_lookup_elem(&server_scratch, &zero);
	if (!r)
		return 0;
	__builtin_memset(r, 0, sizeof(*r));
	r->start_ns = bpf_ktime_get_ns();
	r->resp = GO_ARG3(ctx);
	r->req = GO_ARG4(ctx);
	struct go_object *req = request_read(r->req);
	if (!req)
		return 0;
	/* Copied before the header walk, which may evict the copy's cache
	 * lines but never writes it. */
	r->ctx = go_object_word(req, off_req_ctx + 8);
	read_traceparent(r, go_object_word(req, off_req_header));
	if (r->sc.tp_state != TP_VALID) {
		random_bytes(r->sc.trace_id, 16);
		__builtin_memset(r->sc.parent_span_id, 0, 8);
		r->sc.trace_flags = 1;
	}
	random_bytes(r->sc.span_id, 8);

	struct server_key k = {
		.pid = bpf_get_current_pid_tgid() >> 32,
		.g = GO_G(ctx),
	};
	if (track_panics) {
		__u64 hi = go_word_at((void *)(k.g + off_g_stack + off_stack_hi));
		r->depth = hi - GO_ENTRY_SP(ctx);
	}
	if (r->ctx) {
		struct ptr_key ck = {.pid = k.pid, .ptr = r->ctx};
		bpf_map_update_elem(&ctx_spans, &ck, &r->sc, BPF_ANY);
	}
	if (track_goroutines) {
		r->goid = current_goid(ctx);
		struct ptr_key gk = {.pid = k.pid, .ptr = r->goid};
		bpf_map_update_elem(&goid_spans, &gk, &r->sc, BPF_ANY);
	}
	bpf_map_update_elem(&server_reqs, &k, r, BPF_ANY);
	return 0;
}

/* Forget the finished request's registrations (also when its event was lost). */
static __always_inline void server_unregister(__u32 pid, struct server_req *r)
{
	struct ptr_key ck = {.pid = pid, .ptr = r->ctx};
	if (r->ctx)
		bpf_map_delete_elem(&ctx_spans, &ck);
	if (r->goid) {
		struct ptr_key gk = {.pid = pid, .ptr = r->goid};
		bpf_map_delete_elem(&goid_spans, &gk);
	}
}

/* The id of the HTTP/2 server stream *st (client-initiated: odd), 0 when
 * unreadable. */
static __always_inline __u32 h2_stream_id(__u64 st)
{
	__u32 id = 0;
	if (!st || bpf_probe_read_user(&id, sizeof(id), (void *)(st + (off_h2stream_id ? off_h2stream_id : off_h2stream2_id))) != 0 ||
	    !(id & 1))
		return 0;
	return id;
}

/* Whether the header block reached the connection: what a client saw when
 * the handler panicked (net/http then closes the HTTP/1 connection, or
 * resets the HTTP/2 stream, without writing anything more). */
/* w: the *response (HTTP/1) or the writer state (HTTP/2; rws2 for Go >= 1.27's). */
static __always_inline int header_sent(__u64 proto_major, __u64 w, __u8 rws2)
{
	__u8 sent = 0;
	if (proto_major == 1 && off_resp_cw && off_cw_wrote_header)
		bpf_probe_read_user(&sent, 1, (void *)(w + off_resp_cw + off_cw_wrote_header));
	else if (proto_major == 2 && !rws2 && off_h2rws_sent_header)
		bpf_probe_read_user(&sent, 1, (void *)(w + off_h2rws_sent_header));
	else if (proto_major == 2 && rws2 && off_h2rws2_sent_header)
		bpf_probe_read_user(&sent, 1, (void *)(w + off_h2rws2_sent_header));
	return sent;
}

/*
 * End the request r of goroutine k: one event, and its registrations
 * forgotten. At ServeHTTP's RET the handler returned; from
 * uprobe_recovery it panicked and net/http recovered.
 */
static __always_inline int server_end(struct server_key *k, struct server_req *r, __u8 panicked)
{
	struct http_server_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	server_unregister(k->pid, r);
	if (!e) {
		stat_inc(STAT_LOST);
		bpf_map_delete_elem(&server_reqs, k);
		return 0;
	}
	e->hdr.kind = EVENT_HTTP_SERVER;
	e->hdr.pid = k->pid;
	e->start_ns = r->start_ns;
	e->end_ns = bpf_ktime_get_ns();
	e->sc = r->sc;
	e->cut = 0;
	e->panicked = panicked;

	struct go_object *req = request_read(r->req);
	__u64 url = go_object_word(req, off_req_url);
	e->method_len = go_object_string_copy(e->method, METHOD_MAX, req, off_req_method, CUT_METHOD, &e->cut);
	e->path_len = go_string_field(e->path, PATH_MAX_, url ? (void *)(url + off_url_path) : 0, CUT_PATH, &e->cut);
	e->route_len = off_req_pattern ? go_object_string_copy(e->route, ROUTE_MAX, req, off_req_pattern, CUT_ROUTE, &e->cut) : 0;
	e->host_len = go_object_string_copy(e->host, HOST_MAX, req, off_req_host, CUT_HOST, &e->cut);
	e->remote_len = go_object_string_copy(e->remote, REMOTE_MAX, req, off_req_remote, CUT_REMOTE, &e->cut);

	e->proto_major = go_object_word(req, off_req_proto_major);
	e->proto_minor = go_object_word(req, off_req_proto_minor);
	e->status = 0;
	e->status_read = 0;
	e->stream = 0;
	/* rw is a *response only for HTTP/1.x; HTTP/2 passes its own writer
	 * type through the same function. The handler has returned but the
	 * writer is not released yet: its state still holds the status. Only
	 * a state that points back to this request is net/http's own (an
	 * HTTP/2 server of another package may pass another writer type). */
	__u64 w = 0; /* the writer whose state says whether headers went out */
	__u8 rws2 = 0;
	if (e->proto_major == 1 && off_resp_status && r->resp) {
		w = r->resp;
		e->status = go_word_at((void *)(r->resp + off_resp_status));
		e->status_read = 1;
	} else if (e->proto_major == 2 && r->resp) {
		/* Up to Go 1.26 the state holds the *Request itself; from 1.27 a
		 * ServerRequest whose URL pointer the Request shares. */
		__u64 rws = go_word_at((void *)r->resp);
		if (rws && off_h2rws_status && go_word_at((void *)(rws + off_h2rws_req)) == r->req) {
			e->status = go_word_at((void *)(rws + off_h2rws_status));
			e->status_read = 1;
			w = rws;
			if (off_h2stream_id)
				e->stream = h2_stream_id(go_word_at((void *)(rws + off_h2rws_stream)));
		} else if (rws && off_h2rws2_status && off_h2sreq_url && url &&
			   go_word_at((void *)(rws + off_h2rws2_req + off_h2sreq_url)) == url) {
			e->status = go_word_at((void *)(rws + off_h2rws2_status));
			e->status_read = 1;
			w = rws;
			rws2 = 1;
			if (off_h2stream2_id)
				e->stream = h2_stream_id(go_word_at((void *)(rws + off_h2rws2_stream)));
		}
	}
	/* After a panic the client saw a status only if the header block had
	 * gone out before; otherwise nothing (0, and not read: no status). */
	if (panicked && e->status_read && !header_sent(e->proto_major, w, rws2)) {
		e->status = 0;
		e->status_read = 0;
	}

	bpf_map_delete_elem(&server_reqs, k);
	event_submit(e);
	return 0;
}

SEC("uprobe/server_handler_serve_http_return")
int uprobe_server_return(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	struct server_key k = {
		.pid = bpf_get_current_pid_tgid() >> 32,
		.g = GO_G(ctx),
	};
	struct server_req *r = bpf_map_lookup_elem(&server_reqs, &k);
	if (!r) {
		stat_inc(STAT_NO_ENTRY);
		return 0;
	}
	return server_end(&k, r, 0);
}

/*
 * A handler that panics never reaches ServeHTTP's RET when net/http
 * recovers the panic ((*conn).serve for HTTP/1, the HTTP/2 server's
 * runHandler): without this its request would vanish and its context stay
 * registered until an unrelated later context reused the address.
 *
 * runtime.recovery(gp *g) runs, on the g0 stack (gp in RAX), exactly when
 * a recover() succeeded, before execution resumes in the frame whose
 * deferred call recovered; nothing else calls it, so the normal path pays
 * no probe hit. That frame's SP is _panic.sp (Go >= 1.22) or g.sigcode0
 * (Go 1.21). Measured from the stack's top like the depth recorded at
 * ServeHTTP's entry, a frame above ServeHTTP is net/http's: the request is
 * over. A frame below it is the handler's own recovery (middleware that
 * turns panics into 500s): the handler goes on and its RET ends the span.
 */
SEC("uprobe/runtime_recovery")
int uprobe_recovery(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	struct server_key k = {
		.pid = bpf_get_current_pid_tgid() >> 32,
		.g = GO_ARG1(ctx),
	};
	struct server_req *r = bpf_map_lookup_elem(&server_reqs, &k);
	if (!r)
		return 0;
	__u64 sp;
	if (off_panic_sp) {
		__u64 p = go_word_at((void *)(k.g + off_g_panic));
		sp = p ? go_word_at((void *)(p + off_panic_sp)) : 0;
	} else {
		sp = go_word_at((void *)(k.g + off_g_sigcode0));
	}
	__u64 hi = go_word_at((void *)(k.g + off_g_stack + off_stack_hi));
	if (!sp || sp > hi || !r->depth)
		return 0;
	if (hi - sp >= r->depth)
		return 0;
	return server_end(&k, r, 1);
}

/*
 * Tell the socket programs which ids the request about to be written on the
 * connection r->conn carries, with a hash of its "METHOD /path" as it will
 * appear on the request line, unless the application set a traceparent
 * itself: then an announcement left for that connection is withdrawn, so
 * the app's own header is never doubled.
 */
/* Whether the application set a traceparent on the *http.Request itself. */
static __always_inline int own_traceparent(__u64 req)
{
	struct map_search ms = {
		.key = "Traceparent",
		.key_len = 11,
	};
	char own[8];
	__u8 cut = 0;
	__u64 hdr = go_word_at((void *)(req + off_req_header));
	return go_header_get(hdr, &ms, own, sizeof(own), &cut) > 0 || cut;
}

static __always_inline void announce(__u32 pid, struct client_req *r)
{
	struct inject_key k = {.pid = pid, .stream = 0, .conn = r->conn};
	__u8 cut = 0;
	if (own_traceparent(r->req)) {
		bpf_map_delete_elem(&inject_pending, &k);
		return;
	}

	char method[METHOD_MAX] = {};
	char path[INJECT_PATH_MAX] = {};
	struct go_string s = {};
	go_string_at(&s, (void *)(r->req + off_req_method));
	__u32 mlen = go_string_copy(method, METHOD_MAX, s, &cut);
	s.len = 0;
	__u64 url = go_word_at((void *)(r->req + off_req_url));
	if (url)
		go_string_at(&s, (void *)(url + off_url_path));
	__u32 plen = go_string_copy(path, INJECT_PATH_MAX, s, &cut);

	__u32 h = FNV_OFFSET;
	if (mlen == 0) { /* net/http sends GET for an empty method */
		h = fnv(fnv(fnv(h, 'G'), 'E'), 'T');
	}
	for (int i = 0; i < METHOD_MAX; i++) {
		if (i >= mlen)
			break;
		h = fnv(h, method[i]);
	}
	h = fnv(h, ' ');
	if (plen == 0) /* an empty path goes out as "/" */
		h = fnv(h, '/');
	for (int i = 0; i < INJECT_PATH_MAX; i++) {
		if (i >= plen)
			break;
		h = fnv(h, path[i]);
	}
	struct inject_ids ids = {.flags = r->sc.trace_flags, .line_hash = h};
	__builtin_memcpy(ids.trace_id, r->sc.trace_id, 16);
	__builtin_memcpy(ids.span_id, r->sc.span_id, 8);
	bpf_map_update_elem(&inject_pending, &k, &ids, BPF_ANY);
}

/*
 * net/http client: (*Transport).roundTrip(req *Request) (*Response, error)
 * carries every request a Client or Transport sends (redirects each get
 * their own call). Entry: t in RAX, req in RBX. Return: *Response in RAX,
 * the error's itab in RBX and data in RCX.
 */
SEC("uprobe/transport_round_trip")
int uprobe_client_entry(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	__u32 zero = 0;
	struct client_req *r = bpf_map_lookup_elem(&client_scratch, &zero);
	if (!r)
		return 0;
	__builtin_memset(r, 0, sizeof(*r));
	r->start_ns = bpf_ktime_get_ns();
	r->req = GO_ARG2(ctx);
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	struct span_context parent = {};
	if (ctx_find(pid, req_ctx(r->req), &parent)) {
		r->link = LINK_CONTEXT;
	} else if (track_goroutines) {
		struct ptr_key gk = {.pid = pid, .ptr = current_goid(ctx)};
		struct span_context *sc = bpf_map_lookup_elem(&goid_spans, &gk);
		if (sc) {
			parent = *sc;
			r->link = LINK_GOROUTINE;
		}
	}
	if (r->link != LINK_NONE) {
		__builtin_memcpy(r->sc.trace_id, parent.trace_id, 16);
		__builtin_memcpy(r->sc.parent_span_id, parent.span_id, 8);
		r->sc.trace_flags = parent.trace_flags;
		/* Tells user space whether the trace came from outside (a valid
		 * traceparent) or was started here and may still be joined to a
		 * caller on this node. */
		r->sc.tp_state = parent.tp_state;
	} else {
		random_bytes(r->sc.trace_id, 16);
		r->sc.trace_flags = 1;
	}
	random_bytes(r->sc.span_id, 8);

	struct server_key k = {.pid = pid, .g = GO_G(ctx)};
	bpf_map_update_elem(&client_reqs, &k, r, BPF_ANY);
	return 0;
}

/*
 * HTTP/1.x: (*persistConn).roundTrip(req *transportRequest) runs on the
 * caller's goroutine once Transport.roundTrip has picked the connection
 * (pc in RAX), before the request can reach its writeLoop: the
 * connection, pc.conn, goes into the caller's client_req (for its event),
 * and with --inject-context the request is announced for exactly that
 * connection. HTTP/2 takes pconn.alt instead and never comes here. A retry
 * on another connection comes again and announces for that one.
 */
SEC("uprobe/persist_conn_round_trip")
int uprobe_client_conn(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	struct server_key k = {
		.pid = bpf_get_current_pid_tgid() >> 32,
		.g = GO_G(ctx),
	};
	struct client_req *r = bpf_map_lookup_elem(&client_reqs, &k);
	if (!r)
		return 0;
	__u64 iface[2] = {};
	if (bpf_probe_read_user(iface, sizeof(iface), (void *)(GO_ARG1(ctx) + off_pconn_conn)) != 0)
		iface[0] = iface[1] = 0;
	/* Over TLS the connection is known (for linking) but never announced:
	 * the socket program would see ciphertext. */
	if (go_net_conn(iface[0], iface[1], &r->conn) == CONN_TCP && inject_enabled)
		announce(k.pid, r);
	return 0;
}

SEC("uprobe/transport_round_trip_return")
int uprobe_client_return(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	struct server_key k = {
		.pid = bpf_get_current_pid_tgid() >> 32,
		.g = GO_G(ctx),
	};
	struct client_req *r = bpf_map_lookup_elem(&client_reqs, &k);
	if (!r) {
		stat_inc(STAT_NO_ENTRY);
		return 0;
	}
	struct http_client_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_LOST);
		bpf_map_delete_elem(&client_reqs, &k);
		return 0;
	}
	e->hdr.kind = EVENT_HTTP_CLIENT;
	e->hdr.pid = k.pid;
	e->start_ns = r->start_ns;
	e->end_ns = bpf_ktime_get_ns();
	e->sc = r->sc;
	e->link = r->link;
	e->cut = 0;
	e->conn = r->conn;
	e->stream = r->stream;
	__u64 resp = GO_ARG1(ctx);
	e->err_itab = GO_ARG2(ctx);
	e->status = resp ? go_word_at((void *)(resp + off_response_status_code)) : 0;

	struct go_object *req = request_read(r->req);
	struct go_object *u = url_read(go_object_word(req, off_req_url));
	e->method_len = go_object_string_copy(e->method, METHOD_MAX, req, off_req_method, CUT_METHOD, &e->cut);
	e->scheme_len = u ? go_object_string_copy(e->scheme, 16, u, off_url_scheme, 0, &e->cut) : 0;
	e->host_len = u ? go_object_string_copy(e->host, HOST_MAX, u, off_url_host, CUT_HOST, &e->cut) : 0;
	e->path_len = u ? go_object_string_copy(e->path, PATH_MAX_, u, off_url_path, CUT_PATH, &e->cut) : 0;

	bpf_map_delete_elem(&client_reqs, &k);
	event_submit(e);
	return 0;
}

/*
 * HTTP/2: (*http2ClientConn).roundTrip(req, streamf) (internal/http2's
 * (*ClientConn).roundTrip from Go 1.27) runs on the caller's goroutine
 * with the connection chosen (cc in RAX, the request in RBX: the
 * *Request, or from 1.27 the *ClientRequest net/http made of it). The
 * connection, cc.tconn, goes into the caller's client_req; with
 * --inject-context the request's ids wait for its stream id in
 * h2_requests, unless the application set a traceparent itself.
 */
SEC("uprobe/h2_client_conn_round_trip")
int uprobe_h2_client(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	struct server_key k = {
		.pid = bpf_get_current_pid_tgid() >> 32,
		.g = GO_G(ctx),
	};
	struct client_req *r = bpf_map_lookup_elem(&client_reqs, &k);
	if (!r)
		return 0;
	__u64 iface[2] = {};
	if (bpf_probe_read_user(iface, sizeof(iface), (void *)(GO_ARG1(ctx) + off_h2cc_tconn)) != 0)
		iface[0] = iface[1] = 0;
	int kind = go_net_conn(iface[0], iface[1], &r->conn);
	r->stream = 0; /* a retry on another connection gets a new stream */
	struct ptr_key pk = {.pid = k.pid, .ptr = GO_ARG2(ctx)};
	if (kind != CONN_NONE)
		bpf_map_update_elem(&h2_callers, &pk, &k, BPF_ANY);
	else
		bpf_map_delete_elem(&h2_callers, &pk);
	if (!inject_enabled)
		return 0;
	if (kind != CONN_TCP || own_traceparent(r->req)) {
		/* Nothing to announce: and nothing an earlier request that
		 * lived at this address left behind may be taken for it. */
		bpf_map_delete_elem(&h2_requests, &pk);
		return 0;
	}
	struct inject_ids ids = {.flags = r->sc.trace_flags, .line_hash = 0};
	__builtin_memcpy(ids.trace_id, r->sc.trace_id, 16);
	__builtin_memcpy(ids.span_id, r->sc.span_id, 8);
	bpf_map_update_elem(&h2_requests, &pk, &ids, BPF_ANY);
	return 0;
}

static __always_inline int conn_equal(const struct conn_tuple *a, const struct conn_tuple *b)
{
	if (a->local_port != b->local_port || a->remote_port != b->remote_port)
		return 0;
	for (int i = 0; i < 16; i++)
		if (a->local_ip[i] != b->local_ip[i] || a->remote_ip[i] != b->remote_ip[i])
			return 0;
	return 1;
}

/*
 * HTTP/2: (*http2clientStream).encodeAndWriteHeaders (cs in RAX, the same
 * request in RBX) runs on the stream's goroutine once writeRequest has
 * given the stream its id, before it encodes and writes the header block.
 * The id goes into the caller's client_req (found through h2_callers, and
 * only when cs's connection is exactly the one the caller's RoundTrip
 * read), for the client event; with --inject-context the request is
 * announced for exactly that connection and stream, for the socket
 * program's HTTP/2 walker (inject_h2.h), only on a plain *net.TCPConn.
 */
SEC("uprobe/h2_encode_and_write_headers")
int uprobe_h2_headers(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	struct ptr_key pk = {.pid = bpf_get_current_pid_tgid() >> 32, .ptr = GO_ARG2(ctx)};
	struct server_key ck = {};
	struct server_key *caller = bpf_map_lookup_elem(&h2_callers, &pk);
	if (caller) {
		ck = *caller;
		bpf_map_delete_elem(&h2_callers, &pk);
	}
	struct inject_ids ids = {};
	int announce_it = 0;
	struct inject_ids *p = inject_enabled ? bpf_map_lookup_elem(&h2_requests, &pk) : 0;
	if (p) {
		ids = *p;
		announce_it = 1;
		bpf_map_delete_elem(&h2_requests, &pk);
	}
	if (!caller && !announce_it)
		return 0;
	__u64 cs = GO_ARG1(ctx);
	__u32 id = 0;
	if (bpf_probe_read_user(&id, sizeof(id), (void *)(cs + off_h2cs_id)) != 0 || !(id & 1))
		return 0;
	__u64 cc = go_word_at((void *)(cs + off_h2cs_cc));
	__u64 iface[2] = {};
	if (!cc || bpf_probe_read_user(iface, sizeof(iface), (void *)(cc + off_h2cc_tconn)) != 0)
		return 0;
	struct inject_key key = {.pid = pk.pid, .stream = id};
	int kind = go_net_conn(iface[0], iface[1], &key.conn);
	if (kind == CONN_NONE)
		return 0;
	if (caller) {
		struct client_req *r = bpf_map_lookup_elem(&client_reqs, &ck);
		if (r && conn_equal(&r->conn, &key.conn))
			r->stream = id;
	}
	if (announce_it && kind == CONN_TCP)
		bpf_map_update_elem(&inject_pending, &key, &ids, BPF_ANY);
	return 0;
}

/*
 * Goroutine ancestry (only attached with goroutine tracking on): at each RET
 * of runtime.newproc1, RAX is the new g, whose parentGoid names the
 * goroutine that ran the `go` statement. A child of a goroutine serving a
 * request inherits that request's span.
 */
SEC("uprobe/runtime_newproc1_return")
int uprobe_newproc1_return(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	__u64 newg = GO_ARG1(ctx);
	if (!newg || !off_g_parent_goid)
		return 0;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct ptr_key pk = {.pid = pid, .ptr = go_word_at((void *)(newg + off_g_parent_goid))};
	struct span_context *sc = bpf_map_lookup_elem(&goid_spans, &pk);
	if (!sc)
		return 0;
	struct ptr_key ck = {.pid = pid, .ptr = go_word_at((void *)(newg + off_g_goid))};
	bpf_map_update_elem(&goid_spans, &ck, sc, BPF_ANY);
	return 0;
}
