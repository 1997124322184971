/* W3C trace context: parsing an incoming traceparent, minting fresh ids. */
#ifndef GOLENS_TRACE_CONTEXT_H
#define GOLENS_TRACE_CONTEXT_H

#include "types.h"

/* Length of a version-00 traceparent: 2+1+32+1+16+1+2. */
#define TRACEPARENT_LEN 55

/* What the probe learned about an incoming traceparent. */
enum tp_state {
	TP_NONE = 0,      /* no traceparent header */
	TP_VALID = 1,     /* parsed; trace id and parent come from it */
	TP_MALFORMED = 2, /* present but unusable: a new trace is started */
};

/* Ids of one span, as the probe minted or received them. */
struct span_context {
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8];
	__u8 trace_flags;
	__u8 tp_state; /* enum tp_state */
	__u8 _pad[6];
};

static __always_inline int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode n bytes from 2n lowercase hex chars; non-zero on a bad char. Also
 * reports through *nonzero whether any decoded byte was non-zero. */
static __always_inline int hex_decode(__u8 *dst, const char *src, int n, int *nonzero)
{
	int any = 0;
	for (int i = 0; i < n; i++) {
		int hi = hex_nibble(src[2 * i]);
		int lo = hex_nibble(src[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		dst[i] = (__u8)((hi << 4) | lo);
		any |= dst[i];
	}
	*nonzero = any != 0;
	return 0;
}

/*
 * Parse a traceparent value of len bytes at buf into sc. Follows the W3C
 * rules: version ff is invalid, version 00 is exactly 55 bytes, later
 * versions may be longer but must continue with '-'; ids must be lowercase
 * hex and not all zero. Returns TP_VALID or TP_MALFORMED.
 */
static __always_inline int traceparent_parse(struct span_context *sc, const char *buf, __u32 len)
{
	int nz = 0;
	if (len < TRACEPARENT_LEN)
		return TP_MALFORMED;
	int v1 = hex_nibble(buf[0]), v0 = hex_nibble(buf[1]);
	if (v1 < 0 || v0 < 0 || (v1 == 15 && v0 == 15))
		return TP_MALFORMED;
	if (v1 == 0 && v0 == 0 && len != TRACEPARENT_LEN)
		return TP_MALFORMED;
	if (len > TRACEPARENT_LEN && buf[TRACEPARENT_LEN] != '-')
		return TP_MALFORMED;
	if (buf[2] != '-' || buf[35] != '-' || buf[52] != '-')
		return TP_MALFORMED;
	if (hex_decode(sc->trace_id, buf + 3, 16, &nz) != 0 || !nz)
		return TP_MALFORMED;
	if (hex_decode(sc->parent_span_id, buf + 36, 8, &nz) != 0 || !nz)
		return TP_MALFORMED;
	int f1 = hex_nibble(buf[53]), f0 = hex_nibble(buf[54]);
	if (f1 < 0 || f0 < 0)
		return TP_MALFORMED;
	sc->trace_flags = (__u8)((f1 << 4) | f0);
	return TP_VALID;
}

/* Fill ids with random bytes (bpf_get_prandom_u32 is not cryptographic, but
 * W3C only asks trace ids to be unique, and 128 bits make collisions moot). */
static __always_inline void random_bytes(__u8 *dst, int n)
{
	for (int i = 0; i < n; i += 4) {
		__u32 r = bpf_get_prandom_u32();
		__builtin_memcpy(dst + i, &r, 4);
	}
}

#endif
