/*
 * Which TCP connection a Go program uses: struct conn_tuple, as a uprobe
 * reads it from a Go net.Conn (or any interface) holding a *net.TCPConn,
 * and as a socket program (sk_msg, sock_ops) builds it from the socket, so
 * both sides can key the same map by connection.
 */
#ifndef GOLENS_CONN_H
#define GOLENS_CONN_H

#include "types.h"
#include "go_types.h"

/*
 * One TCP connection seen from one of its ends. IPv4 addresses are stored
 * IPv4-mapped (::ffff:a.b.c.d), so a dual-stack socket and an IPv4 one
 * give the same bytes; ports in host byte order. All zero: unknown.
 */
struct conn_tuple {
	__u8 local_ip[16];
	__u8 remote_ip[16];
	__u16 local_port;
	__u16 remote_port;
	__u32 _pad;
};

/* Socket programs need only the tuple: they define CONN_TUPLE_ONLY. */
#ifndef CONN_TUPLE_ONLY

#include "go_object.h"

/*
 * Set at load time (probes.ConnFields, probes.ConnTypes). conn_known says
 * the offsets were resolved for this target: without it nothing is read.
 * The type addresses come from the symbol table (0 in a stripped binary).
 */
volatile const __u8 conn_known = 0;
volatile const __u64 tcpconn_type = 0; /* *net.TCPConn's type descriptor in the process */
volatile const __u64 tcpaddr_type = 0; /* *net.TCPAddr's */
volatile const __u64 tlsconn_type = 0; /* *crypto/tls.Conn's */
volatile const __u64 off_tlsconn_conn = 0; /* crypto/tls.Conn.conn, a net.Conn */
volatile const __u64 off_tcpconn_conn = 0; /* net.TCPConn.conn (embedded net.conn) */
volatile const __u64 off_conn_fd = 0;      /* net.conn.fd, a *netFD */
volatile const __u64 off_netfd_family = 0;
volatile const __u64 off_netfd_sotype = 0;
volatile const __u64 off_netfd_net = 0;   /* "tcp", "tcp4", "tcp6" */
volatile const __u64 off_netfd_laddr = 0; /* net.Addr */
volatile const __u64 off_netfd_raddr = 0;
volatile const __u64 off_tcpaddr_ip = 0; /* net.IP, a []byte of 4 or 16 */
volatile const __u64 off_tcpaddr_port = 0;

#define CONN_AF_INET 2
#define CONN_AF_INET6 10
#define CONN_SOCK_STREAM 1

/* An itab starts {inter, type}: the dynamic type's descriptor is its
 * second word, in every Go release. */
#define GO_ITAB_TYPE 8

/* Whether the interface whose itab is given holds the type at want; with
 * want unknown (0: a stripped binary) the caller checks the shape instead. */
static __always_inline int go_itab_is(__u64 itab, __u64 want)
{
	if (!want)
		return 1;
	__u64 typ = 0;
	if (bpf_probe_read_user(&typ, sizeof(typ), (void *)(itab + GO_ITAB_TYPE)) != 0)
		return 0;
	return typ == want;
}

/* Read the net.Addr interface (itab, data), which must hold a
 * *net.TCPAddr, into ip (IPv4-mapped for a 4-byte IP) and port. 1 when
 * read. The itab is checked unless it is checked_itab (both ends of a
 * netFD share theirs: one check serves both). */
static __always_inline int go_tcp_addr_of(__u64 itab, __u64 data, __u64 checked_itab, __u8 *ip, __u16 *port)
{
	if (!itab || !data || (itab != checked_itab && !go_itab_is(itab, tcpaddr_type)))
		return 0;
	struct go_field f[] = {
		{off_tcpaddr_ip, 24},
		{off_tcpaddr_port, 8},
	};
	struct go_object *a = go_object_read(GO_OBJ_ADDR, data, GO_FIELDS(f));
	if (!a)
		return 0;
	const void *ptr = (const void *)go_object_word(a, off_tcpaddr_ip);
	__s64 len = (__s64)go_object_word(a, off_tcpaddr_ip + 8);
	if (!ptr)
		return 0;
	if (len == 4) {
		if (bpf_probe_read_user(ip + 12, 4, ptr) != 0)
			return 0;
		__builtin_memset(ip, 0, 10);
		ip[10] = 0xff;
		ip[11] = 0xff;
	} else if (len == 16) {
		if (bpf_probe_read_user(ip, 16, ptr) != 0)
			return 0;
	} else {
		return 0;
	}
	__s64 p = (__s64)go_object_word(a, off_tcpaddr_port);
	if (p <= 0 || p > 65535)
		return 0;
	*port = (__u16)p;
	return 1;
}

/* go_tcp_addr_of for the net.Addr interface at addr. */
static __always_inline int go_tcp_addr(__u64 addr, __u8 *ip, __u16 *port)
{
	__u64 iface[2] = {};
	if (bpf_probe_read_user(iface, sizeof(iface), (void *)addr) != 0)
		return 0;
	return go_tcp_addr_of(iface[0], iface[1], 0, ip, port);
}

/*
 * Read into *t the connection that the Go interface (itab, data) holds,
 * when it holds a *net.TCPConn. Returns 1 when *t is known; otherwise 0
 * and *t all zero: another dynamic type (a *tls.Conn, a wrapper), no
 * offsets for this target, or a read that failed. Never a guess.
 *
 * With the symbol table the itab's type word must be *net.TCPConn's. A
 * stripped binary has no address to compare with; the value must then
 * have the shape of one: its *netFD a stream socket of family AF_INET or
 * AF_INET6 on network "tcp…", with *net.TCPAddr ends (net sets them from
 * the socket for every TCP netFD). Any other type read that way (a TLS
 * conn's first word is an itab, whose words are code pointers) fails
 * those checks.
 */
static __always_inline int go_tcp_conn(__u64 itab, __u64 data, struct conn_tuple *t)
{
	__builtin_memset(t, 0, sizeof(*t));
	if (!conn_known || !itab || !data || !go_itab_is(itab, tcpconn_type))
		return 0;
	__u64 fd = 0;
	if (bpf_probe_read_user(&fd, sizeof(fd), (void *)(data + off_tcpconn_conn + off_conn_fd)) != 0 || !fd)
		return 0;
	/* The netFD's fields in one call (go_object.h). */
	struct go_field f[] = {
		{off_netfd_family, 8},
		{off_netfd_sotype, 8},
		{off_netfd_net, 16},
		{off_netfd_laddr, 16},
		{off_netfd_raddr, 16},
	};
	struct go_object *nfd = go_object_read(GO_OBJ_NETFD, fd, GO_FIELDS(f));
	if (!nfd)
		return 0;
	__s64 family = (__s64)go_object_word(nfd, off_netfd_family);
	__s64 sotype = (__s64)go_object_word(nfd, off_netfd_sotype);
	if ((family != CONN_AF_INET && family != CONN_AF_INET6) || sotype != CONN_SOCK_STREAM)
		return 0;
	struct go_string net = go_object_string(nfd, off_netfd_net);
	char name[3] = {};
	if (net.len < 3 || net.len > 4 || !net.ptr || bpf_probe_read_user(name, sizeof(name), net.ptr) != 0)
		return 0;
	if (name[0] != 't' || name[1] != 'c' || name[2] != 'p')
		return 0;
	__u64 litab = go_object_word(nfd, off_netfd_laddr), ldata = go_object_word(nfd, off_netfd_laddr + 8);
	__u64 ritab = go_object_word(nfd, off_netfd_raddr), rdata = go_object_word(nfd, off_netfd_raddr + 8);
	if (!go_tcp_addr_of(litab, ldata, 0, t->local_ip, &t->local_port) ||
	    !go_tcp_addr_of(ritab, rdata, litab, t->remote_ip, &t->remote_port)) {
		__builtin_memset(t, 0, sizeof(*t));
		return 0;
	}
	return 1;
}

/* What go_net_conn found. */
#define CONN_NONE 0
#define CONN_TCP 1 /* a *net.TCPConn itself: the socket sees the plain bytes */
#define CONN_TLS 2 /* a *tls.Conn over a *net.TCPConn: the socket sees ciphertext */

/*
 * Like go_tcp_conn, and when the interface holds a *tls.Conn, the
 * connection under it: tls.Conn.conn is itself a net.Conn, read one level
 * down (never further). The result says which it was, so that a caller
 * who would touch the bytes on the wire (an announcement for the sk_msg
 * program) can insist on CONN_TCP: it must never see CONN_TLS as plain.
 *
 * With the symbol table the outer type word must be *tls.Conn's and the
 * inner one *net.TCPConn's. A stripped binary has neither address: a
 * value that is not itself a TCP conn (go_tcp_conn's shape checks) is
 * then unwrapped when its first words, at tls.Conn.conn's offset, are an
 * interface whose value passes those same checks: a TCP netFD with
 * *net.TCPAddr ends. Another wrapper that keeps its net.Conn there would
 * be unwrapped too; what is read is then still the TCP connection it
 * wraps, so the tuple is never wrong, only the kind may be a wrapper's
 * rather than TLS, and both are CONN_TLS: not plain, never announced.
 */
static __always_inline int go_net_conn(__u64 itab, __u64 data, struct conn_tuple *t)
{
	if (go_tcp_conn(itab, data, t))
		return CONN_TCP;
	if (!conn_known || !itab || !data)
		return CONN_NONE;
	if (tcpconn_type && !tlsconn_type)
		return CONN_NONE; /* symbols, but no *tls.Conn in this program */
	if (tlsconn_type && !go_itab_is(itab, tlsconn_type))
		return CONN_NONE;
	__u64 inner[2] = {};
	if (bpf_probe_read_user(inner, sizeof(inner), (void *)(data + off_tlsconn_conn)) != 0)
		return CONN_NONE;
	if (!go_tcp_conn(inner[0], inner[1], t))
		return CONN_NONE;
	return CONN_TLS;
}

#endif /* CONN_TUPLE_ONLY */

/* Whether t says nothing (the reader did not know the connection). */
static __always_inline int conn_unknown(const struct conn_tuple *t)
{
	return t->local_port == 0 || t->remote_port == 0;
}

#endif
