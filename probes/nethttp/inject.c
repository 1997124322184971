//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * --inject-context: a W3C traceparent added on the wire to the HTTP/1.x
 * requests of watched processes, without writing into their memory.
 *
 * A cgroup sock_ops program puts the TCP connections that watched processes
 * open into a sockhash (the connect() runs in the process, so its pid is
 * known; the socket can join the map once established). An sk_msg program on
 * that sockhash sees every message those sockets send before TCP cuts it into
 * segments: when the client probe announced a request for that very
 * connection (by its 4-tuple, which the uprobe read from the Go net.Conn
 * and this program from the socket) and the message starts with that
 * request's line ("METHOD /path", hashed), it inserts "traceparent: ..."
 * right after the request line, with the client span as parent.
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

/* Counters, by slot (Injector.Stats, Injector.Skipped). */
enum inject_stat {
	INJ_DONE = 0,          /* headers injected */
	INJ_REFUSED = 1,       /* insertions the kernel refused */
	INJ_NO_ANNOUNCE = 2,   /* an HTTP/1.x request line with nothing announced for its connection */
	INJ_LINE_MISMATCH = 3, /* announced, but the message's request line is not that request's */
	INJ_STAT_MAX = 16,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, INJ_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} inject_stats SEC(".maps");

static __always_inline void inject_count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&inject_stats, &slot);
	if (v)
		*v += 1;
}

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

static const char hexdigits[16] = "0123456789abcdef";

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

SEC("sk_msg")
int sk_msg_inject(struct sk_msg_md *msg)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&inject_pids, &pid))
		return SK_PASS;
	__u32 want = msg->size < SCAN_MAX ? msg->size : SCAN_MAX;
	if (want < 16 || bpf_msg_pull_data(msg, 0, want, 0) != 0)
		return SK_PASS;
	__u8 *d = msg->data;
	__u8 *end = msg->data_end;

	/* "METHOD SP path[?query] SP HTTP/1.x CRLF": hash method and path as
	 * the client probe did, and find the end of the line. */
	__u32 h = FNV_OFFSET;
	int sp = -1;
	for (int i = 0; i < 16; i++) {
		if (d + i + 1 > end)
			return SK_PASS;
		__u8 c = d[i];
		if (c == ' ') {
			sp = i;
			break;
		}
		if (c < 'A' || c > 'Z')
			return SK_PASS; /* not a request line: a body, say */
		h = fnv(h, c);
	}
	if (sp <= 0)
		return SK_PASS;
	h = fnv(h, ' ');
	/* The path, up to '?' or the space before the version; only its first
	 * INJECT_PATH_MAX bytes count, as on the client side. */
	__u32 p0 = sp + 1;
	for (int i = 0; i < INJECT_PATH_MAX; i++) {
		__u32 at = p0 + i;
		if (at >= SCAN_MAX || d + at + 1 > end)
			return SK_PASS;
		__u8 c = d[at];
		if (c == ' ' || c == '?')
			break;
		h = fnv(h, c);
	}
	int eol = -1;
	for (int i = 0; i < SCAN_MAX; i++) {
		if (d + i + 1 > end)
			return SK_PASS;
		if (d[i] == '\n') {
			eol = i;
			break;
		}
	}
	if (eol < 0)
		return SK_PASS;
	/* Only what was announced for this connection, and only for the
	 * request it was announced for; either way the announcement is used
	 * up, so it cannot reach a later request. */
	struct inject_key k = {.pid = pid, .stream = 0};
	if (!msg_conn(msg, &k.conn))
		return SK_PASS;
	struct inject_ids *p = bpf_map_lookup_elem(&inject_pending, &k);
	if (!p) {
		inject_count(INJ_NO_ANNOUNCE);
		return SK_PASS;
	}
	struct inject_ids ids = *p;
	bpf_map_delete_elem(&inject_pending, &k);
	if (ids.line_hash != 0 && ids.line_hash != h) {
		inject_count(INJ_LINE_MISMATCH);
		return SK_PASS;
	}

	__u32 off = eol + 1;
	if (bpf_msg_push_data(msg, off, TP_HEADER_LEN, 0) != 0) {
		inject_count(INJ_REFUSED);
		return SK_PASS;
	}
	if (bpf_msg_pull_data(msg, off, off + TP_HEADER_LEN, 0) != 0) {
		inject_count(INJ_REFUSED);
		return SK_PASS;
	}
	d = msg->data;
	end = msg->data_end;
	if (d + TP_HEADER_LEN > end) {
		inject_count(INJ_REFUSED);
		return SK_PASS;
	}
	__builtin_memcpy(d, "traceparent: 00-", 16);
	for (int i = 0; i < 16; i++) {
		d[16 + 2 * i] = hexdigits[ids.trace_id[i] >> 4];
		d[17 + 2 * i] = hexdigits[ids.trace_id[i] & 15];
	}
	d[48] = '-';
	for (int i = 0; i < 8; i++) {
		d[49 + 2 * i] = hexdigits[ids.span_id[i] >> 4];
		d[50 + 2 * i] = hexdigits[ids.span_id[i] & 15];
	}
	d[65] = '-';
	d[66] = '0';
	d[67] = (ids.flags & 1) ? '1' : '0';
	d[68] = '\r';
	d[69] = '\n';
	inject_count(INJ_DONE);
	return SK_PASS;
}
