/*
 * In-process propagation, shared by every probe family: a server span is
 * findable, while its handler runs, by the address of its request's
 * context object. Every family's objects share this one map (the manager
 * hands them the same instance), so an HTTP handler's gRPC call finds its
 * HTTP server span and a gRPC handler's HTTP call finds its gRPC span.
 */
#ifndef GOLENS_PROPAGATION_H
#define GOLENS_PROPAGATION_H

#include "types.h"
#include "go_types.h"
#include "trace_context.h"

struct ptr_key {
	__u32 pid;
	__u32 _pad;
	__u64 ptr; /* a context object's address, or a goroutine id */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768); /* the node's server spans in flight, as server_reqs */
	__type(key, struct ptr_key);
	__type(value, struct span_context);
} ctx_spans SEC(".maps");

/*
 * Every context type of package context (valueCtx, cancelCtx, timerCtx,
 * withoutCancelCtx, afterFuncCtx) embeds its parent Context as its first
 * field, so a context's parent object is the data word at offset 8. A
 * foreign context type breaks the walk harmlessly: lookups just miss.
 */
#define CTX_WALK_MAX 16

static __always_inline int ctx_find(__u32 pid, __u64 c, struct span_context *out)
{
	for (int i = 0; i < CTX_WALK_MAX; i++) {
		if (!c)
			return 0;
		struct ptr_key k = {.pid = pid, .ptr = c};
		struct span_context *sc = bpf_map_lookup_elem(&ctx_spans, &k);
		if (sc) {
			*out = *sc;
			return 1;
		}
		c = go_word_at((void *)(c + 8));
	}
	return 0;
}

#endif
