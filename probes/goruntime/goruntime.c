//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * Go runtime probe: one event per stop-the-world pause, GC pauses included.
 *
 * runtime.stopTheWorldWithSema(reason stwReason) starts every pause (reason
 * in AL: 1 = GC mark termination, 2 = GC sweep termination, others are not
 * GC) and runtime.startTheWorldWithSema ends it. Both run a handful of times
 * per GC cycle (two pauses a cycle) and never on the allocation path, so two
 * probe hits per pause cost nothing measurable. Only one pause runs at a time
 * in a process, so the state is keyed by process.
 */
#include "types.h"
#include "go_abi.h"
#include "go_types.h"
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Addresses (in the running process) and offsets of runtime globals read at
 * the end of a pause. An address of 0 means unknown (the binary is stripped
 * of its symbol table, or its load address was not found); its offset is
 * then 0 too. An offset of 0 is a real one: goidgen is schedt's first
 * field. */
volatile const __u64 gc_controller_addr = 0;
volatile const __u64 off_heap_marked = 0;
volatile const __u64 sched_addr = 0;
volatile const __u64 off_sched_goidgen = 0;

struct gc_pause_event {
	struct event_header hdr;
	__u64 start_ns;
	__u64 end_ns;
	__u64 heap_marked; /* live heap marked by the last finished cycle; 0 unknown */
	__u64 goidgen;     /* goroutine ids handed out so far; 0 unknown */
	__u32 reason;      /* runtime.stwReason */
	__u32 _pad;
};

struct stw_state {
	__u64 start_ns;
	__u32 reason;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct stw_state);
} stw SEC(".maps");

const struct gc_pause_event *unused_gc_pause_event __attribute__((unused));

SEC("uprobe/stop_the_world")
int uprobe_stw_entry(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct stw_state s = {
		.start_ns = bpf_ktime_get_ns(),
		.reason = (__u8)GO_ARG1(ctx),
	};
	bpf_map_update_elem(&stw, &pid, &s, BPF_ANY);
	return 0;
}

SEC("uprobe/start_the_world_return")
int uprobe_stw_return(struct pt_regs *ctx)
{
	stat_inc(STAT_HITS);
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct stw_state *s = bpf_map_lookup_elem(&stw, &pid);
	if (!s) {
		stat_inc(STAT_NO_ENTRY);
		return 0;
	}
	struct gc_pause_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_LOST);
		bpf_map_delete_elem(&stw, &pid);
		return 0;
	}
	e->hdr.kind = EVENT_GC_PAUSE;
	e->hdr.pid = pid;
	e->start_ns = s->start_ns;
	e->end_ns = bpf_ktime_get_ns();
	e->reason = s->reason;
	e->heap_marked = 0;
	e->goidgen = 0;
	if (gc_controller_addr)
		e->heap_marked = go_word_at((void *)(gc_controller_addr + off_heap_marked));
	if (sched_addr)
		e->goidgen = go_word_at((void *)(sched_addr + off_sched_goidgen));
	bpf_map_delete_elem(&stw, &pid);
	event_submit(e);
	return 0;
}
