/* A TCP connection as both the uprobes and the socket programs name it. */
#ifndef GOLENS_CONN_H
#define GOLENS_CONN_H

#include "types.h"

/* IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), ports in host byte order. */
struct conn_tuple {
	__u8 local_ip[16];
	__u8 remote_ip[16];
	__u16 local_port;
	__u16 remote_port;
	__u32 _pad;
};

#endif
