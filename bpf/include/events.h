/* The one event stream from every probe to user space, and its counters. */
#ifndef GOLENS_EVENTS_H
#define GOLENS_EVENTS_H

#include "types.h"

/* Every event starts with this header so one ring buffer can carry all kinds. */
struct event_header {
	__u32 kind; /* enum event_kind */
	__u32 pid;  /* tgid in the initial PID namespace */
};

enum event_kind {
	EVENT_HTTP_SERVER = 1,
	EVENT_HTTP_CLIENT = 2,
	EVENT_GC_PAUSE = 3,
	EVENT_GRPC = 4,
};

/* Slots of the stats array; user space exports them as golens_ metrics. */
enum stat_slot {
	STAT_HITS = 0,         /* programs run: the probe hits the target paid */
	STAT_LOST = 1,         /* events dropped because the ring buffer was full */
	STAT_NO_ENTRY = 2,     /* a return seen without its entry (attached mid-request, evicted) */
	STAT_MAX = 4,
};

/* Shared by every loaded object: the manager hands all of them one ring
 * buffer and one stats array, so one reader serves every target. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void stat_inc(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &slot);
	if (v)
		*v += 1;
}

/* Wake the reader only when a batch has piled up; otherwise it polls on a
 * short deadline. A wake-up per event would cost more than the event. */
#define WAKEUP_BYTES (256 * 1024)

static __always_inline void event_submit(void *e)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(e, avail >= WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

#endif
