/*
 * Finding one key in a Go map[string][]string (an http.Header) without a probe
 * hit per entry: the bucket or group arrays are walked from kernel space with
 * bpf_loop, one bulk read per bucket/group, whatever the number of headers.
 *
 * Two layouts exist. Go <= 1.23 (and 1.24/1.25 built with
 * GOEXPERIMENT=noswissmap) use runtime.hmap: 2^B buckets of 8 slots, each
 * bucket being [8]tophash, [8]key, [8]elem, *overflow. Go >= 1.24 uses Swiss
 * tables (internal/runtime/maps): either a single group (small maps) or a
 * directory of tables, each an array of groups of 8 slots behind a control
 * word whose byte i has its high bit clear when slot i is full.
 *
 * Header offsets come from the target's DWARF or the generated table; the
 * slot geometry below follows from the key and elem types (string: 16 bytes,
 * []string: 24 bytes), which are the same in every Go release.
 */
#ifndef GOLENS_GO_MAP_H
#define GOLENS_GO_MAP_H

#include "types.h"
#include "go_types.h"

#define GO_MAP_SLOTS 8
#define GO_STR_SIZE 16
#define GO_SLICE_SIZE 24

/* hmap bucket for map[string][]string. */
#define HMAP_KEYS_OFF GO_MAP_SLOTS
#define HMAP_ELEMS_OFF (HMAP_KEYS_OFF + GO_MAP_SLOTS * GO_STR_SIZE)
#define HMAP_OVERFLOW_OFF (HMAP_ELEMS_OFF + GO_MAP_SLOTS * GO_SLICE_SIZE)
#define HMAP_BUCKET_SIZE (HMAP_OVERFLOW_OFF + 8)
#define HMAP_MIN_TOPHASH 5
#define HMAP_MAX_B 8        /* 256 buckets: ~1600 headers */
#define HMAP_MAX_OVERFLOW 4 /* overflow buckets followed per bucket */

/* Swiss group for map[string][]string. */
#define SWISS_SLOT_SIZE (GO_STR_SIZE + GO_SLICE_SIZE)
#define SWISS_GROUP_SIZE (8 + GO_MAP_SLOTS * SWISS_SLOT_SIZE)
#define SWISS_MAX_DIR 8       /* tables followed in a directory */
#define SWISS_MAX_GROUPS 256  /* groups walked per table: 2048 slots */

/* Offsets of the map header fields, set per target at load time. */
volatile const __u8 map_swiss = 0;
volatile const __u64 off_hmap_b = 9;
volatile const __u64 off_hmap_buckets = 16;
volatile const __u64 off_hmap_oldbuckets = 24;
volatile const __u64 off_swiss_dirptr = 16;
volatile const __u64 off_swiss_dirlen = 24;
volatile const __u64 off_table_groups_data = 16;
volatile const __u64 off_table_groups_mask = 24;

/* Scratch space for one bucket or group: too big for the BPF stack. */
struct map_scratch {
	__u8 buf[HMAP_BUCKET_SIZE > SWISS_GROUP_SIZE ? HMAP_BUCKET_SIZE : SWISS_GROUP_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct map_scratch);
} go_map_scratch SEC(".maps");

/* The key looked for is fixed at compile time; 16 bytes hold any we need. */
struct map_search {
	char key[16];
	__u32 key_len;
	__u64 base;   /* bucket or group array */
	__u64 elem;   /* out: address of the found []string header, 0 if none */
};

static __always_inline int key_matches(struct map_search *s, struct go_string k)
{
	char got[16] = {};
	if (k.len != s->key_len || k.ptr == 0)
		return 0;
	if (bpf_probe_read_user(got, s->key_len & 15, k.ptr) != 0)
		return 0;
	for (int i = 0; i < 16; i++) {
		if (i >= s->key_len)
			break;
		if (got[i] != s->key[i])
			return 0;
	}
	return 1;
}

/*
 * A bulk read fails as a whole when any of its bytes is on a page that is
 * not mapped in yet, and a uprobe cannot fault one in. Go's heap hands out
 * memory fresh from the OS (or scavenged) without writing it: a bucket or
 * group whose later slots were never written can end on such a page while
 * its first slots hold the key looked for. (Inferred, not traced: with the
 * bulk read alone, gRPC servers, whose incoming metadata is made with a
 * size hint and so spans two groups, missed a valid incoming traceparent
 * in 9 of about 1300 chains of TestCrossNodeChain and TestSameNodeChain;
 * read this way, in none of 512.) So,
 * after a failed bulk read, the 8 control bytes and each slot's key are
 * read one by one; a slot whose key cannot be read is marked empty (tophash
 * 0 for hmap, below HMAP_MIN_TOPHASH; 0x80 for Swiss). Returns
 * non-zero only when the control bytes themselves cannot be read.
 */
static __always_inline int read_slots(struct map_scratch *sc, __u64 at, __u32 keys_off, __u32 slot_size, __u8 empty)
{
	if (bpf_probe_read_user(sc->buf, GO_MAP_SLOTS, (void *)at) != 0)
		return -1;
	for (int slot = 0; slot < GO_MAP_SLOTS; slot++) {
		__u32 off = keys_off + slot * slot_size;
		if (off > sizeof(sc->buf) - GO_STR_SIZE)
			break;
		if (bpf_probe_read_user(sc->buf + off, GO_STR_SIZE, (void *)(at + off)) != 0)
			sc->buf[slot] = empty;
	}
	return 0;
}

/* Search one hmap bucket (and its overflow chain) at base + i*bucket size. */
static long hmap_bucket_cb(__u64 i, void *ctx)
{
	struct map_search *s = ctx;
	__u32 zero = 0;
	struct map_scratch *sc = bpf_map_lookup_elem(&go_map_scratch, &zero);
	if (!sc)
		return 1;
	__u64 b = s->base + i * HMAP_BUCKET_SIZE;
	for (int o = 0; o <= HMAP_MAX_OVERFLOW && b; o++) {
		if (bpf_probe_read_user(sc->buf, HMAP_BUCKET_SIZE, (void *)b) != 0) {
			/* Part of the bucket is on a page the target never
			 * touched (see read_slots): read what is there. */
			if (read_slots(sc, b, HMAP_KEYS_OFF, GO_STR_SIZE, 0) != 0)
				return 0;
			__builtin_memset(sc->buf + HMAP_OVERFLOW_OFF, 0, 8);
			bpf_probe_read_user(sc->buf + HMAP_OVERFLOW_OFF, 8, (void *)(b + HMAP_OVERFLOW_OFF));
		}
		for (int slot = 0; slot < GO_MAP_SLOTS; slot++) {
			if (sc->buf[slot] < HMAP_MIN_TOPHASH)
				continue;
			struct go_string k;
			__builtin_memcpy(&k, sc->buf + HMAP_KEYS_OFF + slot * GO_STR_SIZE, sizeof(k));
			if (key_matches(s, k)) {
				s->elem = b + HMAP_ELEMS_OFF + slot * GO_SLICE_SIZE;
				return 1;
			}
		}
		__builtin_memcpy(&b, sc->buf + HMAP_OVERFLOW_OFF, sizeof(b));
	}
	return 0;
}

/* Search one Swiss group at base + i*group size. */
static long swiss_group_cb(__u64 i, void *ctx)
{
	struct map_search *s = ctx;
	__u32 zero = 0;
	struct map_scratch *sc = bpf_map_lookup_elem(&go_map_scratch, &zero);
	if (!sc)
		return 1;
	__u64 g = s->base + i * SWISS_GROUP_SIZE;
	if (bpf_probe_read_user(sc->buf, SWISS_GROUP_SIZE, (void *)g) != 0 &&
	    read_slots(sc, g, 8, SWISS_SLOT_SIZE, 0x80) != 0)
		return 0;
	for (int slot = 0; slot < GO_MAP_SLOTS; slot++) {
		if (sc->buf[slot] & 0x80) /* empty or deleted */
			continue;
		struct go_string k;
		__builtin_memcpy(&k, sc->buf + 8 + slot * SWISS_SLOT_SIZE, sizeof(k));
		if (key_matches(s, k)) {
			s->elem = g + 8 + slot * SWISS_SLOT_SIZE + GO_STR_SIZE;
			return 1;
		}
	}
	return 0;
}

static __always_inline void hmap_search(struct map_search *s, __u64 m)
{
	/* B, buckets and oldbuckets in one call when they sit in the first
	 * 32 bytes (every release so far: makemap writes them all), else one
	 * call each. The layout test is on load-time constants, which the
	 * verifier resolves: one path, not two, per map searched. */
	__u8 bits = 0;
	__u64 old = 0, buckets = 0;
	__u64 hdr[4] = {};
	if (off_hmap_b < 32 && off_hmap_buckets <= 24 && off_hmap_oldbuckets <= 24) {
		if (bpf_probe_read_user(hdr, sizeof(hdr), (void *)m) != 0)
			return;
		bits = ((__u8 *)hdr)[off_hmap_b & 31];
		buckets = hdr[(off_hmap_buckets / 8) & 3];
		old = hdr[(off_hmap_oldbuckets / 8) & 3];
	} else {
		bpf_probe_read_user(&bits, 1, (void *)(m + off_hmap_b));
		buckets = go_word_at((void *)(m + off_hmap_buckets));
		old = go_word_at((void *)(m + off_hmap_oldbuckets));
	}
	if (bits > HMAP_MAX_B)
		bits = HMAP_MAX_B;
	/* While the map grows, entries not yet moved still sit in the old
	 * array (half the size); moved ones are marked there and skipped. */
	if (old && bits > 0) {
		s->base = old;
		bpf_loop(1U << (bits - 1), hmap_bucket_cb, s, 0);
		if (s->elem)
			return;
	}
	s->base = buckets;
	if (s->base)
		bpf_loop(1U << bits, hmap_bucket_cb, s, 0);
}

static __always_inline void swiss_search(struct map_search *s, __u64 m)
{
	/* Adjacent words (every release so far) in one call; as in
	 * hmap_search the layout test is on constants. Map and table headers
	 * are written whole when made, so a read of two of their words does
	 * not fail where reading each would not. */
	__u64 dir, pair[2] = {};
	__s64 dirlen;
	if (off_swiss_dirlen == off_swiss_dirptr + 8) {
		if (bpf_probe_read_user(pair, sizeof(pair), (void *)(m + off_swiss_dirptr)) != 0)
			return;
		dir = pair[0];
		dirlen = (__s64)pair[1];
	} else {
		dir = go_word_at((void *)(m + off_swiss_dirptr));
		dirlen = (__s64)go_word_at((void *)(m + off_swiss_dirlen));
	}
	if (!dir)
		return;
	if (dirlen == 0) { /* small map: dirPtr is the one group */
		s->base = dir;
		swiss_group_cb(0, s);
		return;
	}
	__u64 prev = 0;
	for (int d = 0; d < SWISS_MAX_DIR; d++) {
		if (d >= dirlen)
			break;
		__u64 t = go_word_at((void *)(dir + d * 8));
		if (!t || t == prev) /* a table spans consecutive directory slots */
			continue;
		prev = t;
		__u64 mask;
		if (off_table_groups_mask == off_table_groups_data + 8) {
			if (bpf_probe_read_user(pair, sizeof(pair), (void *)(t + off_table_groups_data)) != 0)
				continue;
			s->base = pair[0];
			mask = pair[1];
		} else {
			s->base = go_word_at((void *)(t + off_table_groups_data));
			mask = go_word_at((void *)(t + off_table_groups_mask));
		}
		if (!s->base)
			continue;
		__u32 n = mask + 1 > SWISS_MAX_GROUPS ? SWISS_MAX_GROUPS : (__u32)(mask + 1);
		bpf_loop(n, swiss_group_cb, s, 0);
		if (s->elem)
			return;
	}
}

/*
 * Look up key in the map[string][]string at address m and copy the first
 * value into dst (cap bytes). Returns the copied length, 0 when absent.
 */
static __always_inline __u32 go_header_get(__u64 m, struct map_search *s, char *dst, __u32 cap, __u8 *cut)
{
	if (!m)
		return 0;
	s->elem = 0;
	if (map_swiss)
		swiss_search(s, m);
	else
		hmap_search(s, m);
	if (!s->elem)
		return 0;
	struct go_slice vals;
	if (bpf_probe_read_user(&vals, sizeof(vals), (void *)s->elem) != 0 || vals.len < 1)
		return 0;
	struct go_string v;
	if (go_string_at(&v, vals.ptr) != 0)
		return 0;
	return go_string_copy(dst, cap, v, cut);
}

#endif
