/*
 * --inject-context for HTTP/2 (h2c and gRPC in plaintext): the sk_msg
 * program walks a connection's frames across its sends and appends a
 * traceparent header field to the header block of each announced stream.
 *
 * The field is an HPACK "literal header field without indexing, new name"
 * (RFC 7541 §6.2.2): 0x00, name length, name, value length, value, no
 * Huffman coding. Neither the encoder (the target) nor the decoder (the
 * peer) adds it to its dynamic table, so appending it leaves both tables as
 * they were and every later header block of the connection decodes as the
 * target encoded it. The frame's 24-bit length grows by the field's size.
 *
 * Only the kernel's copy of the bytes changes; the target's memory is never
 * written. Whatever the walker cannot follow for sure ends its work on the
 * connection: every later byte passes untouched, and a counter says why.
 */
#ifndef GOLENS_INJECT_H2_H
#define GOLENS_INJECT_H2_H

#include "types.h"
#include "inject.h"

/* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" opens every HTTP/2 connection with
 * prior knowledge (h2c, gRPC). */
#define H2_PREFACE_LEN 24
static const char h2_preface[H2_PREFACE_LEN] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#define H2_FRAME_HEADER 9
#define H2_HEADERS 0x1
#define H2_CONTINUATION 0x9
#define H2_END_HEADERS 0x4
#define H2_PADDED 0x8
#define H2_PRIORITY 0x20
/* SETTINGS_MAX_FRAME_SIZE may not be set below this (RFC 9113 §6.5.2): a
 * frame grown past it could exceed what the peer accepts. */
#define H2_MIN_MAX_FRAME 16384
/* Frames walked in one message (gRPC batches many small DATA frames into
 * one write); more and the connection is given up. */
#define H2_MAX_FRAMES 2048
/* 0x00, 11, "traceparent", 55, "00-<32 hex>-<16 hex>-0x" */
#define H2_TP_FIELD_LEN 69

/* What the connection carries, decided by its first bytes. */
enum conn_proto {
	PROTO_NEW = 0,
	PROTO_HTTP1,
	PROTO_HTTP2,
	PROTO_LOST, /* no longer followed: every byte passes untouched */
};

/* Per connection (socket local storage: freed with the socket). */
struct conn_state {
	__u8 proto;
	__u8 hdr_len; /* HTTP/2: bytes of a frame header cut by the last send */
	__u8 _pad[2];
	/* HTTP/2: bytes of the current frame still to come in later sends. */
	__u32 skip;
	/* HTTP/2: the stream whose header block goes on in CONTINUATION
	 * frames (a HEADERS frame without END_HEADERS was sent), else 0. */
	__u32 cont_stream;
	/* HTTP/2: the socket's write_seq once the last message walked is
	 * queued whole. */
	__u32 seq;
	__u32 _pad2;
	/* HTTP/2: the first hdr_len (< 9) bytes of that frame header, the
	 * first one highest. */
	__u64 hdr;
};

/* The one field of the kernel's struct tcp_sock the walker reads; its
 * offset is relocated from the running kernel's BTF (CO-RE). */
struct tcp_sock___golens {
	__u32 write_seq;
} __attribute__((preserve_access_index));

/*
 * Where the message starts in the stream: everything sent before it is
 * queued, so the socket's write_seq. When TCP could not queue all of a
 * message (a non-blocking send meeting a full send buffer), the kernel
 * drops its tail and the application sends those bytes again: they would
 * be walked twice. The sequence number tells that case apart.
 */
static __always_inline int write_seq(struct bpf_sock *sk, __u32 *seq)
{
	struct tcp_sock___golens *tp = (void *)bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return -1;
	*seq = tp->write_seq;
	return 0;
}

/* The two fields of the kernel's struct sock (the start of every
 * tcp_sock) that tell how much more the socket can queue. */
struct sock___golens {
	int sk_sndbuf;
	int sk_wmem_queued;
} __attribute__((preserve_access_index));

/* Queued bytes cost more than their size (each skb's head); a message
 * changed on its way out is only sent when the socket has room for twice
 * its size and this much more. */
#define SEND_ROOM_SLACK 4096

/*
 * Whether the socket can queue all of a message of size bytes now. Under
 * back-pressure a non-blocking send is verdicted whole and then queued in
 * part; the application sends the unqueued tail again from its own
 * buffer, which does not have the inserted bytes, so a changed message
 * queued in part damages the stream. TCP stops queueing only when the
 * queued bytes reach the send buffer's size: with room for the whole
 * message (and what its skbs cost) it queues all of it.
 */
static __always_inline int send_room(struct bpf_sock *sk, __u32 size)
{
	struct sock___golens *s = (void *)bpf_skc_to_tcp_sock(sk);
	if (!s)
		return 0;
	long room = (long)s->sk_sndbuf - (long)s->sk_wmem_queued;
	return room >= 2 * (long)size + SEND_ROOM_SLACK;
}

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct conn_state);
} inject_conns SEC(".maps");

/* One walk over a message's frames (bpf_loop's context). */
struct h2_walk {
	struct sk_msg_md *msg;
	struct conn_state *st;
	struct inject_key key;
	__u32 pos;  /* where the next frame header starts */
	__u32 size; /* the message's size, grown by what was inserted */
};

static __always_inline void h2_lose(struct conn_state *st, __u32 reason)
{
	st->proto = PROTO_LOST;
	inject_count(reason);
}

static const char hexdigits[16] = "0123456789abcdef";

/* Writes "00-<trace>-<span>-0x" (55 bytes) at d. */
static __always_inline void tp_value(__u8 *d, struct inject_ids *ids)
{
	d[0] = '0';
	d[1] = '0';
	d[2] = '-';
	for (int i = 0; i < 16; i++) {
		d[3 + 2 * i] = hexdigits[ids->trace_id[i] >> 4];
		d[4 + 2 * i] = hexdigits[ids->trace_id[i] & 15];
	}
	d[35] = '-';
	for (int i = 0; i < 8; i++) {
		d[36 + 2 * i] = hexdigits[ids->span_id[i] >> 4];
		d[37 + 2 * i] = hexdigits[ids->span_id[i] & 15];
	}
	d[52] = '-';
	d[53] = '0';
	d[54] = (ids->flags & 1) ? '1' : '0';
}

/*
 * The frame at pos (header already checked) ends a header block of stream
 * sid: if that stream was announced, append the field to the block, before
 * any padding, and grow the frame's length. Returns the bytes inserted.
 */
static __always_inline __u32 h2_block_end(struct h2_walk *w, __u32 pos, __u32 len,
					  __u8 type, __u8 flags, __u32 sid)
{
	struct sk_msg_md *msg = w->msg;
	w->key.stream = sid;
	struct inject_ids *p = bpf_map_lookup_elem(&inject_pending, &w->key);
	if (!p)
		return 0;
	struct inject_ids ids = *p;
	bpf_map_delete_elem(&inject_pending, &w->key);

	/* Inserting needs the frame's end, and its length field is in this
	 * message: both only when the whole frame is. */
	if ((__u64)pos + H2_FRAME_HEADER + len > w->size) {
		inject_count(STAT_H2_FRAME_SPLIT);
		return 0;
	}
	__u32 pad = 0, pre = 0;
	if (type == H2_HEADERS && (flags & H2_PADDED)) {
		if (len < 1 || bpf_msg_pull_data(msg, pos + H2_FRAME_HEADER, pos + H2_FRAME_HEADER + 1, 0) != 0) {
			inject_count(STAT_H2_MALFORMED);
			return 0;
		}
		__u8 *d = msg->data;
		if (d + 1 > (__u8 *)msg->data_end) {
			inject_count(STAT_H2_MALFORMED);
			return 0;
		}
		pad = d[0];
		pre = 1;
	}
	if (type == H2_HEADERS && (flags & H2_PRIORITY))
		pre += 5;
	if (pre + pad > len) { /* the peer rejects it anyway: leave it */
		inject_count(STAT_H2_MALFORMED);
		return 0;
	}
	__u32 grown = len + H2_TP_FIELD_LEN;
	if (grown > H2_MIN_MAX_FRAME) {
		inject_count(STAT_H2_TOO_LARGE);
		return 0;
	}

	/* w->size already counts what was inserted earlier in this message. */
	if (!send_room(msg->sk, w->size + H2_TP_FIELD_LEN)) {
		inject_count(STAT_SEND_BUFFER_FULL);
		return 0;
	}
	__u32 at = pos + H2_FRAME_HEADER + len - pad;
	if (bpf_msg_push_data(msg, at, H2_TP_FIELD_LEN, 0) != 0) {
		inject_count(STAT_PUSH_FAILED);
		return 0;
	}
	if (bpf_msg_pull_data(msg, at, at + H2_TP_FIELD_LEN, 0) != 0)
		goto undo;
	__u8 *d = msg->data;
	if (d + H2_TP_FIELD_LEN > (__u8 *)msg->data_end)
		goto undo;
	d[0] = 0x00; /* literal without indexing, new name */
	d[1] = 11;
	__builtin_memcpy(d + 2, "traceparent", 11);
	d[13] = 55;
	tp_value(d + 14, &ids);

	if (bpf_msg_pull_data(msg, pos, pos + 3, 0) != 0)
		goto undo;
	d = msg->data;
	if (d + 3 > (__u8 *)msg->data_end)
		goto undo;
	d[0] = grown >> 16;
	d[1] = grown >> 8;
	d[2] = grown;
	inject_count(STAT_INJECTED_HTTP2);
	return H2_TP_FIELD_LEN;

undo:
	/* The inserted bytes must not go out with the old length. */
	inject_count(STAT_PUSH_FAILED);
	if (bpf_msg_pop_data(msg, at, H2_TP_FIELD_LEN, 0) != 0)
		return ~0u;
	return 0;
}

/* What a client may not send: seeing it means the walk is not where it
 * thinks it is (or the client is broken). */
static __always_inline int h2_bad(struct conn_state *st, __u8 type, __u32 sid)
{
	int block = type == H2_HEADERS || type == H2_CONTINUATION;
	return (sid >> 31) || (block && sid == 0) ||
	       (st->cont_stream && (type != H2_CONTINUATION || sid != st->cont_stream)) ||
	       (!st->cont_stream && type == H2_CONTINUATION);
}

/* A header block of stream sid ends in a frame whose header went out in
 * an earlier send: its length can no longer grow. */
static __always_inline void h2_block_end_split(struct h2_walk *w, __u32 sid)
{
	w->key.stream = sid;
	if (!bpf_map_lookup_elem(&inject_pending, &w->key))
		return;
	bpf_map_delete_elem(&inject_pending, &w->key);
	inject_count(STAT_H2_FRAME_SPLIT);
}

/* Keeps the n (< 9) bytes of a frame header at pos, the end of the
 * message, for the next send. */
static __always_inline int h2_keep_header(struct h2_walk *w, __u32 pos)
{
	struct sk_msg_md *msg = w->msg;
	__u32 n = w->size - pos;
	if (bpf_msg_pull_data(msg, pos, w->size, 0) != 0)
		return -1;
	__u8 *d = msg->data;
	__u8 *end = msg->data_end;
	__u64 acc = 0;
	for (int i = 0; i < H2_FRAME_HEADER - 1; i++) {
		if (i >= n)
			break;
		if (d + i + 1 > end)
			return -1;
		acc = acc << 8 | d[i];
	}
	w->st->hdr = acc;
	w->st->hdr_len = n;
	return 0;
}

/* bpf_loop callback: one frame. Returns 1 to stop the walk. */
static long h2_frame(__u32 i, void *ctx)
{
	struct h2_walk *w = ctx;
	struct sk_msg_md *msg = w->msg;
	struct conn_state *st = w->st;
	__u32 pos = w->pos;
	if (pos >= w->size)
		return 1;
	if (pos + H2_FRAME_HEADER > w->size) {
		/* The header goes on in the next send. */
		if (h2_keep_header(w, pos) != 0)
			h2_lose(st, STAT_H2_PULL_FAILED);
		w->pos = w->size;
		return 1;
	}
	if (bpf_msg_pull_data(msg, pos, pos + H2_FRAME_HEADER, 0) != 0) {
		h2_lose(st, STAT_H2_PULL_FAILED);
		return 1;
	}
	__u8 *d = msg->data;
	if (d + H2_FRAME_HEADER > (__u8 *)msg->data_end) {
		h2_lose(st, STAT_H2_PULL_FAILED);
		return 1;
	}
	__u32 len = (__u32)d[0] << 16 | (__u32)d[1] << 8 | d[2];
	__u8 type = d[3], flags = d[4];
	__u32 sid = (__u32)d[5] << 24 | (__u32)d[6] << 16 | (__u32)d[7] << 8 | d[8];
	if (h2_bad(st, type, sid)) {
		h2_lose(st, STAT_H2_BAD_FRAME);
		return 1;
	}
	__u32 added = 0;
	if (type == H2_HEADERS || type == H2_CONTINUATION) {
		if (flags & H2_END_HEADERS) {
			st->cont_stream = 0;
			added = h2_block_end(w, pos, len, type, flags, sid);
			if (added == ~0u) {
				h2_lose(st, STAT_H2_PULL_FAILED);
				return 1;
			}
		} else {
			st->cont_stream = sid;
		}
	}
	w->size += added;
	w->pos = pos + H2_FRAME_HEADER + len + added;
	return 0;
}

/*
 * The last send ended inside a frame header: complete it from this one's
 * first bytes. Returns where the frame's payload ends in this message
 * (maybe beyond it), or -1 when the connection was given up; with *more
 * 0, the whole message was header bytes.
 */
static __always_inline long h2_header_rest(struct h2_walk *w, int *more)
{
	struct conn_state *st = w->st;
	struct sk_msg_md *msg = w->msg;
	__u32 have = st->hdr_len;
	if (have >= H2_FRAME_HEADER) {
		h2_lose(st, STAT_H2_BAD_FRAME);
		return -1;
	}
	__u32 need = H2_FRAME_HEADER - have;
	__u32 take = need < w->size ? need : w->size;
	if (bpf_msg_pull_data(msg, 0, take, 0) != 0) {
		h2_lose(st, STAT_H2_PULL_FAILED);
		return -1;
	}
	__u8 *d = msg->data;
	__u8 *end = msg->data_end;
	/* Bytes 0-7 of the header in acc, byte 8 in last. */
	__u64 acc = st->hdr;
	__u8 last = 0;
	for (int i = 0; i < H2_FRAME_HEADER; i++) {
		if (i >= take)
			break;
		if (d + i + 1 > end) {
			h2_lose(st, STAT_H2_PULL_FAILED);
			return -1;
		}
		if (have + i < H2_FRAME_HEADER - 1)
			acc = acc << 8 | d[i];
		else
			last = d[i];
	}
	if (take < need) {
		st->hdr = acc;
		st->hdr_len = have + take;
		*more = 0;
		return 0;
	}
	st->hdr = 0;
	st->hdr_len = 0;
	*more = 1;
	__u32 len = acc >> 40;
	__u8 type = acc >> 32, flags = acc >> 24;
	__u32 sid = (__u32)(acc & 0xffffff) << 8 | last;
	if (h2_bad(st, type, sid)) {
		h2_lose(st, STAT_H2_BAD_FRAME);
		return -1;
	}
	if (type == H2_HEADERS || type == H2_CONTINUATION) {
		if (flags & H2_END_HEADERS) {
			st->cont_stream = 0;
			h2_block_end_split(w, sid);
		} else {
			st->cont_stream = sid;
		}
	}
	return (long)need + len;
}

/* Walks the frames of an HTTP/2 connection's message. */
static __always_inline void h2_walk(struct sk_msg_md *msg, struct conn_state *st, struct inject_key *key)
{
	__u32 size = msg->size, seq;
	if (write_seq(msg->sk, &seq) != 0 || seq != st->seq) {
		/* Bytes walked already, sent again (or unknowable). */
		h2_lose(st, STAT_H2_RESENT);
		return;
	}
	struct h2_walk w = {.msg = msg, .st = st, .key = *key, .size = size};
	__u64 start = st->skip;
	if (st->hdr_len) {
		int more = 0;
		long end = h2_header_rest(&w, &more);
		if (end < 0)
			return;
		if (!more) {
			st->seq = seq + size;
			return;
		}
		start = end;
	}
	if (start >= size) { /* all of it is the middle of one frame */
		st->skip = start - size;
		st->seq = seq + size;
		return;
	}
	w.pos = start;
	st->skip = 0;
	long n = bpf_loop(H2_MAX_FRAMES, h2_frame, &w, 0);
	if (st->proto != PROTO_HTTP2)
		return;
	if (n < 0 || w.pos < w.size) {
		h2_lose(st, STAT_H2_TOO_MANY_FRAMES);
		return;
	}
	st->skip = w.pos - w.size;
	st->seq = seq + w.size;
}

#endif
