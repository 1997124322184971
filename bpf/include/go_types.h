/* Readers for Go values in the target's memory. */
#ifndef GOLENS_GO_TYPES_H
#define GOLENS_GO_TYPES_H

#include "types.h"

/* A Go string header. */
struct go_string {
	const char *ptr;
	__s64 len;
};

/* A Go slice header. */
struct go_slice {
	void *ptr;
	__s64 len;
	__s64 cap;
};

/*
 * Copy a Go string into dst (capacity cap bytes, a compile-time constant).
 * Returns the number of bytes copied; sets *cut when the string was longer
 * than dst, so user space can say so instead of exporting a wrong value.
 */
static __always_inline __u32 go_string_copy(void *dst, __u32 cap, struct go_string s, __u8 *cut)
{
	if (s.ptr == 0 || s.len <= 0)
		return 0;
	__u64 n = (__u64)s.len;
	if (n > cap) {
		n = cap;
		*cut = 1;
	}
	/* Keeps the verifier sure of the bound whatever the compiler did above. */
	asm volatile("%[n] &= 0xfff" : [n] "+r"(n));
	if (n > cap)
		return 0;
	if (bpf_probe_read_user(dst, n, s.ptr) != 0)
		return 0;
	return (__u32)n;
}

/* Read a Go string header stored at addr. */
static __always_inline int go_string_at(struct go_string *s, const void *addr)
{
	return bpf_probe_read_user(s, sizeof(*s), addr);
}

/*
 * Copy the Go string whose header is at addr (an empty string when addr is
 * 0) into dst, of cap bytes; when it was cut, set bit in *cuts. Returns the
 * length copied.
 */
static __always_inline __u16 go_string_field(void *dst, __u32 cap, const void *addr, __u8 bit, __u8 *cuts)
{
	struct go_string s = {};
	__u8 cut = 0;
	if (addr)
		go_string_at(&s, addr);
	__u32 n = go_string_copy(dst, cap, s, &cut);
	if (cut)
		*cuts |= bit;
	return n;
}

/* Read a pointer-sized word at addr; 0 when unreadable. */
static __always_inline __u64 go_word_at(const void *addr)
{
	__u64 v = 0;
	bpf_probe_read_user(&v, sizeof(v), addr);
	return v;
}

#endif
