package discovery

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
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
	pid, ok := SocketOwner(os.Getpid(), local, []int{os.Getppid(), os.Getpid()})
	if !ok || pid != os.Getpid() {
		t.Errorf("owner of %s = %d %v, want %d", local, pid, ok, os.Getpid())
	}
	if pid, onNode := SocketOwner(os.Getpid(), netip.MustParseAddrPort("127.0.0.1:1"), []int{os.Getpid()}); pid != 0 || onNode {
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
	conns := make([]Accepted, len(addrs))
	for i, a := range addrs {
		conns[i] = Accepted{os.Getpid(), a}
	}
	got := SocketOwners(conns, []int{os.Getppid(), os.Getpid()})
	want := []int{os.Getpid(), 0, os.Getpid(), os.Getpid()}
	for i := range want {
		if got[i].PID != want[i] || got[i].OnNode != (want[i] != 0) || (want[i] != 0 && (got[i].Conn.Local != addrs[i] || got[i].Conn.Remote.String() != ln.Addr().String())) {
			t.Errorf("owner of %s = %+v, want pid %d", addrs[i], got[i], want[i])
		}
	}
}

// A client end closed first sits in TIME_WAIT: on this node, no owner,
// the watched processes of its namespace as who could have held it.
func TestSocketOwnerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	local := netip.MustParseAddrPort(c.LocalAddr().String())
	c.Close() // the client closes first: its end goes to TIME_WAIT
	srv.Close()
	var got SocketHolder
	for i := 0; i < 100; i++ {
		if got = SocketOwners([]Accepted{{os.Getpid(), local}}, []int{os.Getpid()})[0]; got.OnNode {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got.PID != 0 || !got.OnNode || len(got.Neighbours) != 1 || got.Neighbours[0] != os.Getpid() || got.Conn.Local != local {
		t.Errorf("closed client end %s: %+v, want on node, no owner, neighbours [%d]", local, got, os.Getpid())
	}
}

// Two closed client ends on one local port (the kernel shares a port
// between destinations), one towards the server's listener, one towards
// an address nobody listens on any more, and the server's own end gone:
// the one facing the server's listener is the connection.
func TestSocketOwnerClosedSharedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reuse := func(network, address string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) })
		return serr
	}
	first, err := (&net.Dialer{Control: reuse}).Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	local := netip.MustParseAddrPort(first.LocalAddr().String())
	second, err := (&net.Dialer{Control: reuse, LocalAddr: net.TCPAddrFromAddrPort(local)}).Dial("tcp", other.Addr().String())
	if err != nil {
		t.Skipf("no second connection from %s: %v", local, err)
	}
	var srvs []net.Conn
	for _, l := range []net.Listener{ln, other} {
		srv, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		srvs = append(srvs, srv)
	}
	other.Close()
	first.Close() // the clients close first: both ends go to TIME_WAIT
	second.Close()
	for _, srv := range srvs {
		srv.Close() // and the server's ends are gone
	}
	var got SocketHolder
	for i := 0; i < 100; i++ {
		if got = SocketOwners([]Accepted{{os.Getpid(), local}}, []int{os.Getpid()})[0]; got.OnNode {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !got.OnNode || got.Conn.Local != local || got.Conn.Remote.String() != ln.Addr().String() {
		t.Errorf("closed client end %s: %+v, want on node, towards %s", local, got, ln.Addr())
	}
}

// A read of /proc/net/tcp is many reads of a page each, and the kernel
// resumes each at a bucket and an offset in it: with sockets coming and
// going meanwhile, a socket that stays open is listed twice (measured
// here: in most reads of a few hundred sockets). Listed twice, its end
// looked like two connections the server could have seen, and a
// connection between two watched processes was answered "nobody's": its
// callee went out unlinked, uncounted.
func TestSocketOwnersWhileSocketsChurn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1024)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	const stable = 300
	var conns []Accepted
	for i := 0; i < stable; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		srv := <-accepted
		defer srv.Close()
		conns = append(conns, Accepted{os.Getpid(), netip.MustParseAddrPort(c.LocalAddr().String())})
	}
	// Connections opened and closed meanwhile, by another listener (the
	// stable ones' server end stays the only one facing each peer).
	churn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer churn.Close()
	go func() {
		for {
			c, err := churn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if c, err := net.Dial("tcp", churn.Addr().String()); err == nil {
				c.Close()
			}
		}
	}()
	defer func() { close(stop); <-done }()
	wrong := 0
	rounds := 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end) || rounds < 5; rounds++ {
		for i, h := range SocketOwners(conns, []int{os.Getpid()}) {
			if h.PID != os.Getpid() || !h.OnNode || h.Conn.Local != conns[i].Peer {
				if wrong < 3 {
					t.Errorf("round %d: owner of %s = %+v, want this process", rounds, conns[i].Peer, h)
				}
				wrong++
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d answers wrong over %d rounds", wrong, rounds*stable, rounds)
	}
}
