package discovery

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Accepted is a connection a watched server accepted, as its span names
// it: the server's process and the peer address it saw.
type Accepted struct {
	Server int            // pid of the watched process that accepted it
	Peer   netip.AddrPort // the client's address as the server saw it
}

// Conn names the client end of a connection: the network namespace it is
// in (by inode) and its local and remote addresses.
type Conn struct {
	NetNS         uint64
	Local, Remote netip.AddrPort
}

// SocketHolder is who holds the client end of a connection, as
// SocketOwners found it.
type SocketHolder struct {
	PID    int  // the watched process holding it; 0 when none does
	OnNode bool // the client end is on this node: held by PID, or closed (TIME_WAIT)
	Conn   Conn // the client end found, when OnNode
	// Neighbours are, for a closed client end (PID 0, OnNode), the
	// watched processes of its network namespace: the only ones that can
	// have held it.
	Neighbours []int
	// Ambiguous: more than one connection could be the one the server
	// saw (PID 0, not OnNode): not a guess, but not "nobody's" either.
	Ambiguous bool
}

// SocketOwner finds which of pids holds the client end of the connection
// server accepted from peer (see SocketOwners).
func SocketOwner(server int, peer netip.AddrPort, pids []int) (pid int, onNode bool) {
	o := SocketOwners([]Accepted{{server, peer}}, pids)[0]
	return o.PID, o.OnNode
}

// SocketOwners names, for each connection a watched server accepted, the
// watched process among pids that holds its client end, in the order
// given. Each namespace's socket tables and each process's open files are
// read once for the whole batch, so a batch costs about what one lookup
// does (with thousands of sockets, a read of every open file is the cost).
//
// Where the client end may be depends on the peer. A loopback peer
// (127.0.0.0/8, ::1) means something only inside the server's own network
// namespace: it is looked for there and nowhere else, so a socket with
// the same address in another pod never answers. Any other peer may be in
// any watched process's namespace, but only as the exact other end of the
// connection: local address the peer, remote address the server's end of
// it (as the server's namespace lists it). When the server's end is no
// longer listed, only its own namespace is searched, for a client end
// facing an address the server listens on.
//
// A client end found open belongs to the watched process of its namespace
// that has it among its open files, or to an unwatched process (0, false).
// When more than one connection could be the one the server saw (the
// peer's local port reused towards another of its addresses, or the same
// pair in two namespaces), none is named (0, false, Ambiguous): not a
// guess.
// One found closed (TIME_WAIT, no inode any more) has no owner: 0, true,
// with the namespace's watched processes as Neighbours.
func SocketOwners(conns []Accepted, pids []int) []SocketHolder {
	out := make([]SocketHolder, len(conns))
	want := make(map[netip.AddrPort]bool, len(conns))
	peers := make([]netip.AddrPort, len(conns))
	for i, c := range conns {
		peers[i] = netip.AddrPortFrom(c.Peer.Addr().Unmap(), c.Peer.Port())
		want[peers[i]] = true
	}
	// The namespace of each watched pid, and the watched pids of each
	// namespace, in the order given.
	var spaces []uint64
	members := make(map[uint64][]int)
	for _, p := range pids {
		ns, err := nsInode(p)
		if err != nil {
			continue
		}
		if _, seen := members[ns]; !seen {
			spaces = append(spaces, ns)
		}
		members[ns] = append(members[ns], p)
	}
	// Socket tables, read once per namespace when first needed, through
	// any process in it.
	tables := make(map[uint64]*table)
	tableOf := func(ns uint64, via int) *table {
		if t, ok := tables[ns]; ok {
			return t
		}
		t := readTable(via, want)
		tables[ns] = t
		return t
	}
	// Open files, read once per process when first needed.
	held := make(map[int]map[uint64]bool)
	holds := func(pid int, ino uint64) bool {
		h, ok := held[pid]
		if !ok {
			h = heldSockets(pid)
			held[pid] = h
		}
		return h[ino]
	}
	for j, c := range conns {
		peer := peers[j]
		home, err := nsInode(c.Server)
		if err != nil {
			continue // the server is gone: nothing to search from
		}
		servers := serverEnds(tableOf(home, c.Server), c.Server, peer, holds)
		if len(servers) > 1 {
			// The peer's address is the far end of more than one
			// connection to the server: which one it saw cannot be told.
			out[j].Ambiguous = true
			continue
		}
		search := []uint64{home}
		if !peer.Addr().IsLoopback() && len(servers) > 0 {
			for _, ns := range spaces {
				if ns != home {
					search = append(search, ns)
				}
			}
		}
		// The client ends that can be this connection's: exactly one, or
		// the peer's address is in use by several connections towards
		// the server's namespace (a local port is reused for another
		// destination) and which one the server saw cannot be told.
		var ends []SocketHolder
		var inos []uint64
		for _, ns := range search {
			via := c.Server
			if ns != home {
				via = members[ns][0]
			}
			for _, sk := range tableOf(ns, via).byLocal[peer] {
				if len(servers) > 0 && !endOf(sk, servers) {
					continue
				}
				// The server's end is gone (only its own namespace is
				// searched then): the client end must at least face an
				// address the server listens on. Another socket on the
				// peer's port towards elsewhere (the kernel shares a
				// local port between destinations) is not this one.
				if len(servers) == 0 && !listensOn(tableOf(home, c.Server), c.Server, sk.remote, holds) {
					continue
				}
				ends = append(ends, SocketHolder{OnNode: true, Conn: Conn{NetNS: ns, Local: sk.local, Remote: sk.remote}})
				inos = append(inos, sk.ino)
			}
		}
		if len(ends) != 1 {
			out[j].Ambiguous = len(ends) > 1
			continue
		}
		end, ns := ends[0], ends[0].Conn.NetNS
		if inos[0] == 0 {
			// Closed: no owner, only who could have been it.
			end.Neighbours = members[ns]
			out[j] = end
			continue
		}
		// Open: a watched process of its namespace holds it, or a process
		// golens does not watch does.
		for _, p := range members[ns] {
			if holds(p, inos[0]) {
				end.PID = p
				out[j] = end
				break
			}
		}
	}
	return out
}

// serverEnds lists the server's ends of connections from peer in its
// namespace's table t: sockets facing peer on an address the server
// listens on (others are other servers' connections, such as closed ones
// from an earlier use of the same client port), the open ones the server
// holds first; when some are open, only those.
func serverEnds(t *table, server int, peer netip.AddrPort, holds func(int, uint64) bool) []socket {
	var open, closed []socket
	for _, sk := range t.byRemote[peer] {
		if !listensOn(t, server, sk.local, holds) {
			continue
		}
		switch {
		case sk.ino == 0:
			closed = append(closed, sk)
		case holds(server, sk.ino):
			open = append(open, sk)
		}
	}
	if len(open) > 0 {
		return open
	}
	return closed
}

// listensOn tells whether server holds a listening socket that accepts
// connections to addr.
func listensOn(t *table, server int, addr netip.AddrPort, holds func(int, uint64) bool) bool {
	for _, l := range t.listen {
		if l.local.Port() == addr.Port() && (l.local.Addr() == addr.Addr() || l.local.Addr().IsUnspecified()) && holds(server, l.ino) {
			return true
		}
	}
	return false
}

// endOf tells whether client socket sk is the other end of one of the
// server sockets: its remote address is their local one.
func endOf(sk socket, servers []socket) bool {
	for _, s := range servers {
		if sk.remote == s.local {
			return true
		}
	}
	return false
}

// socket is a TCP socket of a namespace's table: its addresses and its
// inode, 0 once closed.
type socket struct {
	local, remote netip.AddrPort
	ino           uint64
}

// table is the part of a namespace's TCP sockets a lookup needs: those
// whose local or remote address it asks about.
type table struct {
	byLocal, byRemote map[netip.AddrPort][]socket
	listen            []socket // listening sockets
}

func nsInode(pid int) (uint64, error) {
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("no inode for the netns of %d", pid)
	}
	return st.Ino, nil
}

// tcpListen is TCP_LISTEN as /proc/net/tcp writes a socket's state.
const tcpListen = "0A"

// readTable reads the sockets whose local or remote address is in want
// from the network namespace of pid, in /proc/PID/net/tcp{,6}, and its
// listening sockets.
//
// The kernel writes those files a page per read, resuming each read at a
// hash bucket and an offset in it: sockets created or closed meanwhile
// shift the offset, and a socket open throughout is listed twice (often,
// with a few hundred sockets and some churn). A line repeated exactly
// (same addresses, same inode) is that same socket, read once here: two
// open sockets never share an inode, and one pair of addresses has one
// closed socket at most.
func readTable(pid int, want map[netip.AddrPort]bool) *table {
	t := &table{byLocal: make(map[netip.AddrPort][]socket), byRemote: make(map[netip.AddrPort][]socket)}
	seen := make(map[socket]bool)
	for _, file := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, file))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			local, ok := parseProcAddr(fields[1])
			if !ok {
				continue
			}
			remote, ok := parseProcAddr(fields[2])
			listening := fields[3] == tcpListen
			if !ok || (!want[local] && !want[remote] && !listening) {
				continue
			}
			n, err := strconv.ParseUint(fields[9], 10, 64)
			if err != nil {
				n = 0
			}
			sk := socket{local: local, remote: remote, ino: n}
			if seen[sk] {
				continue
			}
			seen[sk] = true
			if listening {
				t.listen = append(t.listen, sk)
				continue
			}
			if want[local] {
				// An open socket is listed before a closed one at the
				// same address: it is the one in use.
				if n != 0 {
					t.byLocal[local] = append([]socket{sk}, t.byLocal[local]...)
				} else {
					t.byLocal[local] = append(t.byLocal[local], sk)
				}
			}
			if want[remote] {
				t.byRemote[remote] = append(t.byRemote[remote], sk)
			}
		}
		f.Close()
	}
	return t
}

// parseProcAddr decodes "0100007F:1F90" (IPv4) or a 32-hex-digit IPv6
// address: 32-bit words in host (little-endian) order, port big-endian.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	ip, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), true
}

// heldSockets lists the sockets pid holds among its open files.
func heldSockets(pid int) map[uint64]bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	held := make(map[uint64]bool)
	for _, e := range ents {
		l, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue
		}
		num, ok := strings.CutPrefix(l, "socket:[")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSuffix(num, "]"), 10, 64); err == nil {
			held[n] = true
		}
	}
	return held
}
