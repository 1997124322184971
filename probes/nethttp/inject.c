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
	STAT_HTTP1_MISMATCH,      /* announced, but another request line went out */
	STAT_HTTP1_NO_LINE,       /* announced, but the send starts with no whole request line */
	STAT_H2_FRAME_SPLIT,      /* an announced header block's last frame spans sends */
	STAT_H2_TOO_LARGE,        /* the grown frame would pass 16384 bytes */
	STAT_H2_MALFORMED,        /* padding longer than the frame */
	STAT_H2_HEADER_SPLIT,     /* connection lost: a frame header spans sends */
	STAT_H2_TOO_MANY_FRAMES,  /* connection lost: more frames in one send than walked */
	STAT_H2_BAD_FRAME,        /* connection lost: a frame a client cannot send */
	STAT_H2_PULL_FAILED,      /* connection lost: the kernel could not show the bytes */
	STAT_H2_PREFACE_SPLIT,    /* connection lost: the first send is part of the preface */
	STAT_NO_STATE,            /* message of a connection without state: untouched */
	STAT_H2_RESENT,           /* connection lost: bytes walked already came again */
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

/* The connection a message goes out on, from the sender's side. */
static __always_inline void msg_conn(struct sk_msg_md *msg, struct conn_tuple *c)
{
	if (msg->family == 2 /* AF_INET */) {
		__u32 l = msg->local_ip4, r = msg->remote_ip4;
		c->local_ip[10] = c->local_ip[11] = 0xff;
		c->remote_ip[10] = c->remote_ip[11] = 0xff;
		__builtin_memcpy(&c->local_ip[12], &l, 4);
		__builtin_memcpy(&c->remote_ip[12], &r, 4);
	} else if (msg->family == 10 /* AF_INET6 */) {
		__u32 w;
		w = msg->local_ip6[0];
		__builtin_memcpy(&c->local_ip[0], &w, 4);
		w = msg->local_ip6[1];
		__builtin_memcpy(&c->local_ip[4], &w, 4);
		w = msg->local_ip6[2];
		__builtin_memcpy(&c->local_ip[8], &w, 4);
		w = msg->local_ip6[3];
		__builtin_memcpy(&c->local_ip[12], &w, 4);
		w = msg->remote_ip6[0];
		__builtin_memcpy(&c->remote_ip[0], &w, 4);
		w = msg->remote_ip6[1];
		__builtin_memcpy(&c->remote_ip[4], &w, 4);
		w = msg->remote_ip6[2];
		__builtin_memcpy(&c->remote_ip[8], &w, 4);
		w = msg->remote_ip6[3];
		__builtin_memcpy(&c->remote_ip[12], &w, 4);
	} else {
		return;
	}
	c->local_port = msg->local_port;
	/* Network byte order; kernels put it in the upper 16 bits on
	 * little-endian machines, as for sock_ops. */
	__u32 rp = msg->remote_port;
	c->remote_port = (rp >> 16) ? bpf_ntohl(rp) : bpf_ntohs(rp);
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
	msg_conn(msg, &key.conn);
	if (st->proto == PROTO_HTTP2)
		h2_walk(msg, st, &key);
	else if (st->proto == PROTO_HTTP1)
		http1_inject(msg, &key);
	return SK_PASS;
}

/* HTTP/1.x: a request's header block is written in one send, so its
 * request line starts the message. */
static __always_inline void http1_line(struct sk_msg_md *msg, struct inject_ids *ids);

static __always_inline void http1_inject(struct sk_msg_md *msg, struct inject_key *key)
{
	struct inject_ids *p = bpf_map_lookup_elem(&inject_pending, key);
	if (!p)
		return; /* no request announced on this connection: a body, say */
	struct inject_ids ids = *p;
	bpf_map_delete_elem(&inject_pending, key);
	http1_line(msg, &ids);
}

/* The announced request of this connection goes out: the message must
 * start with its request line, else it is left as it is (counted). */
static __always_inline void http1_line(struct sk_msg_md *msg, struct inject_ids *ids)
{
	__u32 want = msg->size < SCAN_MAX ? msg->size : SCAN_MAX;
	if (want < 16 || bpf_msg_pull_data(msg, 0, want, 0) != 0)
		goto no_line;
	__u8 *d = msg->data;
	__u8 *end = msg->data_end;

	/* "METHOD SP path[?query] SP HTTP/1.x CRLF": hash method and path as
	 * the client probe did, and find the end of the line. */
	__u32 h = FNV_OFFSET;
	int sp = -1;
	for (int i = 0; i < 16; i++) {
		if (d + i + 1 > end)
			goto no_line;
		__u8 c = d[i];
		if (c == ' ') {
			sp = i;
			break;
		}
		if (c < 'A' || c > 'Z')
			goto no_line; /* not a request line */
		h = fnv(h, c);
	}
	if (sp <= 0)
		goto no_line;
	h = fnv(h, ' ');
	/* The path, up to '?' or the space before the version; only its first
	 * INJECT_PATH_MAX bytes count, as on the client side. */
	__u32 p0 = sp + 1;
	for (int i = 0; i < INJECT_PATH_MAX; i++) {
		__u32 at = p0 + i;
		if (at >= SCAN_MAX || d + at + 1 > end)
			goto no_line;
		__u8 c = d[at];
		if (c == ' ' || c == '?')
			break;
		h = fnv(h, c);
	}
	int eol = -1;
	for (int i = 0; i < SCAN_MAX; i++) {
		if (d + i + 1 > end)
			goto no_line;
		if (d[i] == '\n') {
			eol = i;
			break;
		}
	}
	if (eol < 0)
		goto no_line;
	if (ids->line_hash && ids->line_hash != h) {
		inject_count(STAT_HTTP1_MISMATCH);
		return;
	}

	__u32 off = eol + 1;
	if (bpf_msg_push_data(msg, off, TP_HEADER_LEN, 0) != 0) {
		inject_count(STAT_PUSH_FAILED);
		return;
	}
	d = 0;
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
	__builtin_memcpy(d, "traceparent: 00-", 16);
	for (int i = 0; i < 16; i++) {
		d[16 + 2 * i] = hexdigits[ids->trace_id[i] >> 4];
		d[17 + 2 * i] = hexdigits[ids->trace_id[i] & 15];
	}
	d[48] = '-';
	for (int i = 0; i < 8; i++) {
		d[49 + 2 * i] = hexdigits[ids->span_id[i] >> 4];
		d[50 + 2 * i] = hexdigits[ids->span_id[i] & 15];
	}
	d[65] = '-';
	d[66] = '0';
	d[67] = (ids->flags & 1) ? '1' : '0';
	d[68] = '\r';
	d[69] = '\n';
	inject_count(STAT_INJECTED_HTTP1);
	return;

no_line:
	inject_count(STAT_HTTP1_NO_LINE);
}
