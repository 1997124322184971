package probes

import (
	"net/netip"

	"github.com/golens/golens/probes/event"
)

// ConnFields are the offsets bpf/include/conn.h needs to read the TCP
// connection a Go interface holding a *net.TCPConn names (go_tcp_conn). A
// hook whose programs call it lists them among its Fields and sets
// ConnKnown among its Consts, so that without them (an unknown release of
// a stripped binary) the hook is dropped or reads nothing.
var ConnFields = []Field{
	{Const: "off_tcpconn_conn", Struct: "net.TCPConn", Field: "conn"},
	{Const: "off_conn_fd", Struct: "net.conn", Field: "fd"},
	{Const: "off_netfd_family", Struct: "net.netFD", Field: "family"},
	{Const: "off_netfd_sotype", Struct: "net.netFD", Field: "sotype"},
	{Const: "off_netfd_net", Struct: "net.netFD", Field: "net"},
	{Const: "off_netfd_laddr", Struct: "net.netFD", Field: "laddr"},
	{Const: "off_netfd_raddr", Struct: "net.netFD", Field: "raddr"},
	{Const: "off_tcpaddr_ip", Struct: "net.TCPAddr", Field: "IP"},
	{Const: "off_tcpaddr_port", Struct: "net.TCPAddr", Field: "Port"},
	{Const: "off_tlsconn_conn", Struct: "crypto/tls.Conn", Field: "conn"},
}

// ConnKnown is the constant that turns conn.h's reader on.
const ConnKnown = "conn_known"

// ConnTypes are the type descriptors conn.h compares an interface's
// dynamic type with; in a stripped binary they stay unknown and the
// reader checks the shape of what it reads instead (see conn.h).
var ConnTypes = []TypeAddr{
	{Const: "tcpconn_type", Type: "*net.TCPConn", Iface: "net.Conn"},
	{Const: "tcpaddr_type", Type: "*net.TCPAddr", Iface: "net.Addr"},
	{Const: "tlsconn_type", Type: "*crypto/tls.Conn", Iface: "net.Conn"},
}

// ConnTuple decodes conn.h's struct conn_tuple: IPv4-mapped addresses
// become plain IPv4; a tuple with a zero port is unknown (the zero Conn).
func ConnTuple(localIP, remoteIP [16]uint8, localPort, remotePort uint16) event.Conn {
	if localPort == 0 || remotePort == 0 {
		return event.Conn{}
	}
	return event.Conn{
		Local:  netip.AddrPortFrom(netip.AddrFrom16(localIP).Unmap(), localPort),
		Remote: netip.AddrPortFrom(netip.AddrFrom16(remoteIP).Unmap(), remotePort),
	}
}
