package discovery

import (
	"net"
	"net/netip"
	"os"
	"testing"
)

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000000000000000000001000000:0050": "[::1]:80",
		"0000000000000000FFFF00000100007F:D431": "127.0.0.1:54321",
	} {
		got, ok := parseProcAddr(in)
		if !ok || got != netip.MustParseAddrPort(want) {
			t.Errorf("parseProcAddr(%q) = %v %v, want %s", in, got, ok, want)
		}
	}
	if _, ok := parseProcAddr("zz:1"); ok {
		t.Error("garbage parsed")
	}
}

// A real connection in this process: its client end is found as ours.
func TestSocketOwner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := netip.MustParseAddrPort(c.LocalAddr().String())
	pid, ok := SocketOwner(local, []int{os.Getppid(), os.Getpid()})
	if !ok || pid != os.Getpid() {
		t.Errorf("owner of %s = %d %v, want %d", local, pid, ok, os.Getpid())
	}
	if pid, onNode := SocketOwner(netip.MustParseAddrPort("127.0.0.1:1"), []int{os.Getpid()}); pid != 0 || onNode {
		t.Error("owner found for an address nobody holds")
	}
}

// Several addresses in one lookup: each answered in order, from one read
// of the tables and of the files.
func TestSocketOwners(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var addrs []netip.AddrPort
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		addrs = append(addrs, netip.MustParseAddrPort(c.LocalAddr().String()))
	}
	addrs = append(addrs[:1], append([]netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}, addrs[1:]...)...)
	got := SocketOwners(addrs, []int{os.Getppid(), os.Getpid()})
	want := []SocketHolder{{os.Getpid(), true}, {0, false}, {os.Getpid(), true}, {os.Getpid(), true}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("owner of %s = %+v, want %+v", addrs[i], got[i], want[i])
		}
	}
}
