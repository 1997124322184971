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

/* A request about to be written: by process, connection and stream. */
struct inject_key {
	__u32 pid;
	__u32 stream; /* HTTP/2 stream id, 0 for HTTP/1.x */
	struct conn_tuple conn;
};

struct inject_ids {
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 flags;
	__u8 _pad[3];
	__u32 line_hash; /* FNV of "METHOD /path" for HTTP/1.x (0 = unchecked) */
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
