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

// SocketOwner finds which of pids holds a TCP socket whose local address is
// addr: given the peer address a server saw, it names the client process on
// this node. Each pid's own network namespace is searched (pods have their
// own), and the socket's inode is then looked up among the pid's open files.
// When the socket exists in one of those namespaces but is closed (in
// TIME_WAIT, no inode any more), it returns pid 0 and onNode true: the
// caller was on this node but cannot be named. An open socket that no
// given pid holds belongs to a process golens does not watch: 0, false.
func SocketOwner(addr netip.AddrPort, pids []int) (pid int, onNode bool) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	type found struct {
		ino     uint64
		present bool
	}
	byNS := make(map[uint64]found) // netns inode -> the socket there
	for _, p := range pids {
		ns, err := nsInode(p)
		if err != nil {
			continue
		}
		f, seen := byNS[ns]
		if !seen {
			f.ino, f.present = findSocket(p, addr)
			byNS[ns] = f
		}
		onNode = onNode || (f.present && f.ino == 0)
		if f.ino != 0 && holdsSocket(p, f.ino) {
			return p, true
		}
	}
	return 0, onNode
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

// findSocket looks for a socket bound locally to addr in the network
// namespace of pid, in /proc/PID/net/tcp{,6}: its inode (0 once closed) and
// whether it is there at all.
func findSocket(pid int, addr netip.AddrPort) (ino uint64, present bool) {
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
			if !ok || local != addr {
				continue
			}
			present = true
			if n, err := strconv.ParseUint(fields[9], 10, 64); err == nil && n != 0 {
				f.Close()
				return n, true
			}
		}
		f.Close()
	}
	return 0, present
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

func holdsSocket(pid int, inode uint64) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	want := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == want {
			return true
		}
	}
	return false
}
