/*
 * --inject-context: state shared by the client probe, which announces the
 * ids of each outgoing request, and the socket programs (inject.c), which
 * add a traceparent header to that request on its way out.
 */
#ifndef GOLENS_INJECT_H
#define GOLENS_INJECT_H

#include "types.h"
#include "conn.h"

/* Path bytes hashed on both sides: enough to tell requests apart. */
#define INJECT_PATH_MAX 64

/*
 * A request about to be written, by connection: the client probe announces
 * it once the transport picked the connection, before the request's bytes
 * can be written; the sk_msg program consumes it when that connection
 * sends the request. stream is the HTTP/2 stream id, 0 for HTTP/1.x (one
 * request at a time per connection, so the key is exact).
 */
struct inject_key {
	__u32 pid;
	__u32 stream;
	struct conn_tuple conn;
};

struct inject_ids {
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 flags;
	__u8 _pad[3];
	__u32 line_hash; /* HTTP/1.x: FNV of "METHOD /path" (INJECT_PATH_MAX bytes of path); 0 unchecked */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct inject_key);
	__type(value, struct inject_ids);
} inject_pending SEC(".maps");

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

static __always_inline __u32 fnv(__u32 h, __u8 c)
{
	return (h ^ c) * FNV_PRIME;
}

#endif
