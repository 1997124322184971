/*
 * Reading several fields of one Go object with one bpf_probe_read_user.
 *
 * Each call of the helper costs about 90 ns on the bench machine whatever
 * its size (8 bytes or 328: within 15 ns of each other), so a program that
 * reads five strings and four words of an *http.Request field by field pays
 * for the calls, not the bytes. Here the object's leading bytes, up to the
 * end of the last field wanted, are copied once into per-CPU scratch and the
 * fields are taken from the copy.
 *
 * Like a bucket read (go_map.h), the bulk read fails as a whole when part of
 * the span is on a page the target never touched; then each wanted field is
 * read alone into the same place, so the copy reads the same either way.
 */
#ifndef GOLENS_GO_OBJECT_H
#define GOLENS_GO_OBJECT_H

#include "types.h"
#include "go_types.h"

/* Every object read this way has its fields within the first 512 bytes
 * (http.Request's last one, ctx, is at 248 in Go 1.26). */
#define GO_OBJECT_MAX 512
#define GO_OBJECT_FIELDS 10

#define GO_FIELDS(f) (f), (int)(sizeof(f) / sizeof((f)[0]))

struct go_object {
	__u8 b[GO_OBJECT_MAX];
};

/* Slots of go_object_scratch: a program holds at most these at once. */
enum go_object_slot {
	GO_OBJ_REQUEST = 0,
	GO_OBJ_URL = 1,
	GO_OBJ_NETFD = 2, /* conn.h */
	GO_OBJ_ADDR = 3,  /* conn.h: a *net.TCPAddr */
	GO_OBJ_SLOTS = 4,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GO_OBJ_SLOTS);
	__type(key, __u32);
	__type(value, struct go_object);
} go_object_scratch SEC(".maps");

/* A field wanted: its offset and size (8: a word, 16: a string or an
 * interface, 24: a slice). */
struct go_field {
	__u32 off;
	__u32 size;
};

/*
 * Copy the n fields f of the object at addr (offsets and sizes below 4 GiB,
 * as every Go struct's) into slot; returns the copy, or 0
 * when addr is 0 or there is no scratch. Fields that cannot be read (or lie
 * beyond GO_OBJECT_MAX) read as zero.
 */
static __always_inline struct go_object *go_object_read(__u32 slot, __u64 addr, const struct go_field *f, int n)
{
	if (!addr)
		return 0;
	struct go_object *o = bpf_map_lookup_elem(&go_object_scratch, &slot);
	if (!o)
		return 0;
	__u64 span = 0;
	for (int i = 0; i < n && i < GO_OBJECT_FIELDS; i++) {
		if (f[i].off + f[i].size > span)
			span = f[i].off + f[i].size;
	}
	if (span > GO_OBJECT_MAX)
		span = GO_OBJECT_MAX;
	if (span && bpf_probe_read_user(o->b, span, (void *)addr) == 0)
		return o;
	/* Nothing of an earlier object may show through a field not read. */
	__builtin_memset(o->b, 0, sizeof(o->b));
	for (int i = 0; i < n && i < GO_OBJECT_FIELDS; i++) {
		if (!f[i].size)
			continue;
		__u64 off = f[i].off & (GO_OBJECT_MAX - 8);
		if (off != f[i].off || off > GO_OBJECT_MAX - 24)
			continue;
		bpf_probe_read_user(o->b + off, f[i].size > 16 ? 24 : f[i].size > 8 ? 16 : 8, (void *)(addr + off));
	}
	return o;
}

/* The word at off in a copy; 0 for an offset outside it. Go lays words and
 * strings out 8-aligned, which the mask keeps the verifier sure of. */
static __always_inline __u64 go_object_word(const struct go_object *o, __u64 off)
{
	__u64 v = 0;
	if (!o || off > GO_OBJECT_MAX - 8)
		return 0;
	off &= GO_OBJECT_MAX - 8;
	__builtin_memcpy(&v, o->b + off, sizeof(v));
	return v;
}

/* The string header at off in a copy. */
static __always_inline struct go_string go_object_string(const struct go_object *o, __u64 off)
{
	struct go_string s = {
		.ptr = (const char *)go_object_word(o, off),
		.len = (__s64)go_object_word(o, off + 8),
	};
	return s;
}

/* Copy the string at off of a copy into dst, as go_string_field does. */
static __always_inline __u16 go_object_string_copy(void *dst, __u32 cap, const struct go_object *o, __u64 off, __u8 bit, __u8 *cuts)
{
	__u8 cut = 0;
	__u32 n = go_string_copy(dst, cap, go_object_string(o, off), &cut);
	if (cut)
		*cuts |= bit;
	return n;
}

#endif
