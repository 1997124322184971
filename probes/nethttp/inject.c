//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * --inject-context: a W3C traceparent added on the wire to the requests of
 * watched processes, without writing into their memory.
 *
 * A cgroup sock_ops program puts the TCP connections that watched processes
 * open into a sockhash (the connect() runs in the process, so its pid is
 * known; the socket can join the map once established). An sk_msg program on
 * that sockhash sees every message those sockets send before TCP cuts it into
 * segments. A connection's first bytes tell HTTP/2 (the client preface) from
 * HTTP/1.x. For HTTP/1.x, when a message starts with the request line the
 * client probe announced for this connection, it inserts "traceparent: ..."
 * right after the line; for HTTP/2 it follows the frames across sends and
 * appends the header to the header block of each announced stream
 * (inject_h2.h). The client span is the parent either way.
 */
#include "types.h"
#include <bpf/bpf_endian.h>
#define CONN_TUPLE_ONLY /* the tuple, not the uprobe reader's constants */
#include "inject.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Processes whose requests get a traceparent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} inject_pids SEC(".maps");

/* Connections being opened by those processes, by socket cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u32);
} inject_connecting SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} inject_socks SEC(".maps");

/* Counters, by slot: what became of the requests and connections the
 * program saw (names in inject.go, same order). */
enum inject_stat {
	STAT_INJECTED_HTTP1,
	STAT_INJECTED_HTTP2,
	STAT_PUSH_FAILED,         /* the kernel refused the insertion */
	STAT_HTTP1_NO_ANNOUNCE,   /* a request line with nothing announced for its connection */
	STAT_HTTP1_MISMATCH,      /* announced, but another request line went out */
	STAT_HTTP1_NO_LINE,       /* announced, but the send starts with no whole request line */
	STAT_H2_FRAME_SPLIT,      /* an announced header block's last frame spans sends */
	STAT_H2_TOO_LARGE,        /* the grown frame would pass 16384 bytes */
	STAT_H2_MALFORMED,        /* padding longer than the frame */
	STAT_H2_TOO_MANY_FRAMES,  /* connection lost: more frames in one send than walked */
	STAT_H2_BAD_FRAME,        /* connection lost: a frame a client cannot send */
	STAT_H2_PULL_FAILED,      /* connection lost: the kernel could not show the bytes */
	STAT_H2_PREFACE_SPLIT,    /* connection lost: the first send is part of the preface */
	STAT_NO_STATE,            /* message of a connection without state: untouched */
	STAT_H2_RESENT,           /* connection lost: bytes walked already came again */
	STAT_SEND_BUFFER_FULL,    /* no room to queue the whole changed message: untouched */
	STAT_SLOTS,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} inject_stats SEC(".maps");

static __always_inline void inject_count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&inject_stats, &slot);
	if (v)
		*v += 1;
}

#include "inject_h2.h"

SEC("sockops")
int sockops_inject(struct bpf_sock_ops *skops)
{
	__u64 cookie;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB: {
		__u32 pid = bpf_get_current_pid_tgid() >> 32;
		if (!bpf_map_lookup_elem(&inject_pids, &pid))
			break;
		cookie = bpf_get_socket_cookie(skops);
		bpf_map_update_elem(&inject_connecting, &cookie, &pid, BPF_ANY);
		break;
	}
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		cookie = bpf_get_socket_cookie(skops);
		if (!bpf_map_lookup_elem(&inject_connecting, &cookie))
			break;
		bpf_map_delete_elem(&inject_connecting, &cookie);
		bpf_sock_hash_update(skops, &inject_socks, &cookie, BPF_NOEXIST);
		break;
	}
	return 1;
}

#define SCAN_MAX 256
/* "traceparent: " + 55 + "\r\n" */
#define TP_HEADER_LEN 70

/* The connection msg goes out on, from the sender's side, as conn.h keys
 * it: IPv4 mapped into IPv6, ports in host order. sk_msg_md gives
 * local_port in host order and remote_port in network order, which the
 * kernel loads as 16 bits and, on little-endian machines, shifts into the
 * upper half of the word (as bpf_sock_ops does; measured on 6.18); the
 * port is never 0, so whichever half holds it is taken. 0 for a family
 * that is not IP. */
static __always_inline int msg_conn(struct sk_msg_md *msg, struct conn_tuple *t)
{
	__builtin_memset(t, 0, sizeof(*t));
	if (msg->family == 2 /* AF_INET */) {
		__u32 l = msg->local_ip4, r = msg->remote_ip4;
		t->local_ip[10] = t->local_ip[11] = 0xff;
		t->remote_ip[10] = t->remote_ip[11] = 0xff;
		__builtin_memcpy(t->local_ip + 12, &l, 4);
		__builtin_memcpy(t->remote_ip + 12, &r, 4);
	} else if (msg->family == 10 /* AF_INET6 */) {
		__u32 w;
		w = msg->local_ip6[0];
		__builtin_memcpy(t->local_ip, &w, 4);
		w = msg->local_ip6[1];
		__builtin_memcpy(t->local_ip + 4, &w, 4);
		w = msg->local_ip6[2];
		__builtin_memcpy(t->local_ip + 8, &w, 4);
		w = msg->local_ip6[3];
		__builtin_memcpy(t->local_ip + 12, &w, 4);
		w = msg->remote_ip6[0];
		__builtin_memcpy(t->remote_ip, &w, 4);
		w = msg->remote_ip6[1];
		__builtin_memcpy(t->remote_ip + 4, &w, 4);
		w = msg->remote_ip6[2];
		__builtin_memcpy(t->remote_ip + 8, &w, 4);
		w = msg->remote_ip6[3];
		__builtin_memcpy(t->remote_ip + 12, &w, 4);
	} else {
		return 0;
	}
	t->local_port = (__u16)msg->local_port;
	__u32 rp = msg->remote_port;
	t->remote_port = bpf_ntohs((rp & 0xffff) ? (__u16)rp : (__u16)(rp >> 16));
	return 1;
}

/* A connection's first send: the HTTP/2 client preface, or HTTP/1.x. */
static __always_inline void classify(struct sk_msg_md *msg, struct conn_state *st)
{
	__u32 n = msg->size < H2_PREFACE_LEN ? msg->size : H2_PREFACE_LEN;
	if (n == 0)
		return;
	if (bpf_msg_pull_data(msg, 0, n, 0) != 0) {
		st->proto = PROTO_LOST;
		inject_count(STAT_H2_PULL_FAILED);
		return;
	}
	__u8 *d = msg->data;
	__u8 *end = msg->data_end;
	for (int i = 0; i < H2_PREFACE_LEN; i++) {
		if (i >= n) /* every byte sent so far is the preface's */
			break;
		if (d + i + 1 > end) {
			st->proto = PROTO_LOST;
			inject_count(STAT_H2_PULL_FAILED);
			return;
		}
		if (d[i] != h2_preface[i]) {
			st->proto = PROTO_HTTP1;
			return;
		}
	}
	if (n < H2_PREFACE_LEN) {
		st->proto = PROTO_LOST;
		inject_count(STAT_H2_PREFACE_SPLIT);
		return;
	}
	__u32 seq;
	if (write_seq(msg->sk, &seq) != 0) {
		st->proto = PROTO_LOST;
		inject_count(STAT_H2_RESENT);
		return;
	}
	st->proto = PROTO_HTTP2;
	st->skip = H2_PREFACE_LEN;
	st->seq = seq;
}

static __always_inline void http1_inject(struct sk_msg_md *msg, struct inject_key *key);

SEC("sk_msg")
int sk_msg_inject(struct sk_msg_md *msg)
{
	struct bpf_sock *sk = msg->sk;
	if (!sk)
		return SK_PASS;
	struct conn_state *st = bpf_sk_storage_get(&inject_conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		inject_count(STAT_NO_STATE);
		return SK_PASS;
	}
	if (st->proto == PROTO_LOST)
		return SK_PASS;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&inject_pids, &pid)) {
		/* Another process writes, or the target was released: its
		 * bytes are not walked, so nothing later is touched. */
		st->proto = PROTO_LOST;
		return SK_PASS;
	}
	if (st->proto == PROTO_NEW)
		classify(msg, st);
	struct inject_key key = {.pid = pid};
	if (!msg_conn(msg, &key.conn)) {
		st->proto = PROTO_LOST;
		return SK_PASS;
	}
	if (st->proto == PROTO_HTTP2)
		h2_walk(msg, st, &key);
	else if (st->proto == PROTO_HTTP1)
		http1_inject(msg, &key);
	return SK_PASS;
}

/* HTTP/1.x: a request's header block is written in one send, so its
 * request line starts the message. */
__noinline int http1_line(struct sk_msg_md *msg, __u32 *hash);

/* HTTP/1.x: a request's header block is written in one send, so its
 * request line starts the message. Only what was announced for this
 * connection is injected, and only into the request it was announced
 * for; either way the announcement is used up, so it cannot reach a
 * later request. */
static __always_inline void http1_inject(struct sk_msg_md *msg, struct inject_key *key)
{
	__u32 h = 0;
	int eol = http1_line(msg, &h);
	struct inject_ids *p = bpf_map_lookup_elem(&inject_pending, key);
	if (!p) {
		if (eol >= 0) /* a request nobody announced (or a body that looks like one) */
			inject_count(STAT_HTTP1_NO_ANNOUNCE);
		return;
	}
	struct inject_ids ids = *p;
	bpf_map_delete_elem(&inject_pending, key);
	if (eol < 0) {
		inject_count(STAT_HTTP1_NO_LINE);
		return;
	}
	if (ids.line_hash && ids.line_hash != h) {
		inject_count(STAT_HTTP1_MISMATCH);
		return;
	}
	if (!send_room(msg->sk, msg->size + TP_HEADER_LEN)) {
		inject_count(STAT_SEND_BUFFER_FULL);
		return;
	}
	__u32 off = eol + 1;
	if (bpf_msg_push_data(msg, off, TP_HEADER_LEN, 0) != 0) {
		inject_count(STAT_PUSH_FAILED);
		return;
	}
	__u8 *d = 0, *end = 0;
	if (bpf_msg_pull_data(msg, off, off + TP_HEADER_LEN, 0) == 0) {
		d = msg->data;
		end = msg->data_end;
	}
	if (!d || d + TP_HEADER_LEN > end) {
		/* Never send the uninitialised bytes. */
		inject_count(STAT_PUSH_FAILED);
		bpf_msg_pop_data(msg, off, TP_HEADER_LEN, 0);
		return;
	}
	__builtin_memcpy(d, "traceparent: ", 13);
	tp_value(d + 13, &ids);
	d[68] = '\r';
	d[69] = '\n';
	inject_count(STAT_INJECTED_HTTP1);
}

/* "METHOD SP path[?query] SP HTTP/1.x CRLF" at the start of the message:
 * the offset of its '\n', with *hash the FNV of "METHOD /path" as the
 * client probe hashed it; -1 when the message does not start with one.
 * A global function, verified once: inlined, every offset the line could
 * end at would be verified through the rest of the program. */
__noinline int http1_line(struct sk_msg_md *msg, __u32 *hash)
{
	if (!hash)
		return -1;
	__u32 want = msg->size < SCAN_MAX ? msg->size : SCAN_MAX;
	if (want < 16 || bpf_msg_pull_data(msg, 0, want, 0) != 0)
		return -1;
	__u8 *d = msg->data;
	__u8 *end = msg->data_end;
	__u32 h = FNV_OFFSET;
	int sp = -1;
	for (int i = 0; i < 16; i++) {
		if (d + i + 1 > end)
			return -1;
		__u8 c = d[i];
		if (c == ' ') {
			sp = i;
			break;
		}
		if (c < 'A' || c > 'Z')
			return -1; /* not a request line */
		h = fnv(h, c);
	}
	if (sp <= 0)
		return -1;
	h = fnv(h, ' ');
	/* The path, up to '?' or the space before the version; only its first
	 * INJECT_PATH_MAX bytes count, as on the client side. */
	__u32 p0 = sp + 1;
	for (int i = 0; i < INJECT_PATH_MAX; i++) {
		__u32 at = p0 + i;
		if (at >= SCAN_MAX || d + at + 1 > end)
			return -1;
		__u8 c = d[at];
		if (c == ' ' || c == '?')
			break;
		h = fnv(h, c);
	}
	for (int i = 0; i < SCAN_MAX; i++) {
		if (d + i + 1 > end)
			return -1;
		if (d[i] == '\n') {
			*hash = h;
			return i;
		}
	}
	return -1;
}
