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

// SocketHolder is who holds a TCP socket, as SocketOwners found it.
type SocketHolder struct {
	PID    int  // the watched process holding it; 0 when none does
	OnNode bool // the socket is on this node (PID, or closed: TIME_WAIT)
}

// SocketOwner finds which of pids holds a TCP socket whose local address is
// addr: given the peer address a server saw, it names the client process on
// this node. Each pid's own network namespace is searched (pods have their
// own), and the socket's inode is then looked up among the pid's open files.
// When the socket exists in one of those namespaces but is closed (in
// TIME_WAIT, no inode any more), it returns pid 0 and onNode true: the
// caller was on this node but cannot be named. An open socket that no
// given pid holds belongs to a process golens does not watch: 0, false.
func SocketOwner(addr netip.AddrPort, pids []int) (pid int, onNode bool) {
	o := SocketOwners([]netip.AddrPort{addr}, pids)[0]
	return o.PID, o.OnNode
}

// SocketOwners is SocketOwner for several addresses at once, in the same
// order: each namespace's socket tables and each process's open files are
// read once for all of them, so a batch costs about what one lookup does
// (with thousands of sockets, a read of every open file is the cost).
func SocketOwners(addrs []netip.AddrPort, pids []int) []SocketHolder {
	out := make([]SocketHolder, len(addrs))
	norm := make([]netip.AddrPort, len(addrs))
	want := make(map[netip.AddrPort]bool, len(addrs))
	for i, a := range addrs {
		norm[i] = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		want[norm[i]] = true
	}
	// The sockets found, per network namespace (by its inode), and the
	// namespace of each pid, in the order given: the first holder wins.
	tables := make(map[uint64]map[netip.AddrPort]socket)
	nsOf := make([]uint64, len(pids))
	for i, p := range pids {
		ns, err := nsInode(p)
		if err != nil {
			continue
		}
		nsOf[i] = ns
		if _, seen := tables[ns]; !seen {
			tables[ns] = findSockets(p, want)
		}
	}
	// Which of the open sockets each pid holds: one read of its files.
	holds := make([]map[uint64]bool, len(pids))
	for i, p := range pids {
		inodes := make(map[uint64]bool)
		for _, sk := range tables[nsOf[i]] {
			if sk.ino != 0 {
				inodes[sk.ino] = true
			}
		}
		if nsOf[i] != 0 && len(inodes) > 0 {
			holds[i] = heldSockets(p, inodes)
		}
	}
	for j, a := range norm {
		for i := range pids {
			sk, ok := tables[nsOf[i]][a]
			if !ok {
				continue
			}
			out[j].OnNode = out[j].OnNode || sk.ino == 0
			if sk.ino != 0 && holds[i][sk.ino] {
				out[j] = SocketHolder{PID: pids[i], OnNode: true}
				break
			}
		}
	}
	return out
}

// socket is a TCP socket of a namespace's table: its inode, 0 once closed.
type socket struct{ ino uint64 }

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

// findSockets looks for sockets bound locally to the addresses in want in
// the network namespace of pid, in /proc/PID/net/tcp{,6}: an open socket
// (its inode) wins over a closed one at the same address.
func findSockets(pid int, want map[netip.AddrPort]bool) map[netip.AddrPort]socket {
	found := make(map[netip.AddrPort]socket)
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
			if !ok || !want[local] {
				continue
			}
			n, err := strconv.ParseUint(fields[9], 10, 64)
			if err != nil {
				n = 0
			}
			if found[local].ino == 0 {
				found[local] = socket{ino: n}
			}
		}
		f.Close()
	}
	return found
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

// heldSockets says which of inodes pid holds among its open files.
func heldSockets(pid int, inodes map[uint64]bool) map[uint64]bool {
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
		if n, err := strconv.ParseUint(strings.TrimSuffix(num, "]"), 10, 64); err == nil && inodes[n] {
			held[n] = true
			if len(held) == len(inodes) {
				break
			}
		}
	}
	return held
}
