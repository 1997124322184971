package grpc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/probes/grpc"
	"github.com/golens/golens/test/harness"
)

func needEBPF(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("eBPF tests need root in CI")
		}
		t.Skip("needs root for eBPF")
	}
}

// versions are the grpc-go builds of test/apps/grpcapp the client tests
// run against, with a toolchain each accepts: the layouts differ (the
// transport stream is a *Stream up to 1.68, a *ClientStream embedding
// *Stream from 1.69 to 1.76 and Stream by value from 1.77; csAttempt.t
// became transport in 1.71; loopy's originateStream gave way to
// clientHeaderHandler in 1.82). The zero one is the app's own go.mod
// (v1.84) with the installed Go, also stripped, and stripped PIE (the
// load bias applies to every address the programs compare).
var versions = []struct {
	grpc string
	v    harness.Variant
}{
	{"v1.60.1", harness.Variant{Go: "go1.22.12"}},
	{"v1.70.0", harness.Variant{Go: "go1.23.12"}},
	{"v1.81.1", harness.Variant{Go: "go1.25.14"}},
	{"v1.85.0", harness.Variant{Go: "go1.26.8"}},
	{"", harness.Variant{}},
	{"", harness.Variant{Stripped: true}},
	{"", harness.Variant{Stripped: true, PIE: true}},
}

// forVersions runs f in a subtest per build of grpcapp in versions.
func forVersions(t *testing.T, f func(t *testing.T, bin string)) {
	needEBPF(t)
	dir := t.TempDir()
	for _, ver := range versions {
		name := ver.grpc
		if name == "" {
			name = "go.mod"
		}
		t.Run(name+"-"+ver.v.String(), func(t *testing.T) {
			var bin string
			var err error
			if ver.grpc == "" {
				bin, err = harness.BuildApp("grpcapp", ver.v, dir)
			} else {
				bin, err = harness.BuildAppAgainst("grpcapp", ver.v, dir, "google.golang.org/grpc@"+ver.grpc)
			}
			if err != nil {
				t.Fatal(err)
			}
			f(t, bin)
		})
	}
}

// startPair starts B, a gRPC server, and A, whose /fanout calls B, and
// attaches m to both.
func startPair(t *testing.T, bin string, m *probes.Manager) (a *harness.App, bGRPC string) {
	t.Helper()
	bGRPC, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	b, err := harness.StartApp(bin, nil, "-grpc-addr", bGRPC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	a, err = harness.StartApp(bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	for _, app := range []*harness.App{a, b} {
		res, err := m.Attach(app.PID(), &event.Process{PID: app.PID()})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Refused) > 0 {
			t.Fatalf("probes refused: %v", res.Refused)
		}
	}
	return a, bGRPC
}

// fanout asks A for one /fanout request to bGRPC.
func fanout(t *testing.T, a *harness.App, bGRPC string, calls []string, tp string) string {
	t.Helper()
	resp, err := http.Get("http://" + a.Addr + "/fanout?target=" + url.QueryEscape(bGRPC) +
		"&calls=" + url.QueryEscape(strings.Join(calls, ",")) + "&tp=" + tp)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// collector keeps the gRPC events a manager delivers.
type collector struct {
	mu  sync.Mutex
	evs []*event.GRPC
}

func (c *collector) handle(ev event.Event) {
	if e, ok := ev.(*event.GRPC); ok {
		c.mu.Lock()
		c.evs = append(c.evs, e)
		c.mu.Unlock()
	}
}

// wait returns the events of method once there are n of each side, or
// what there is after timeout.
func (c *collector) wait(method string, n int, timeout time.Duration) (clients, servers []*event.GRPC) {
	deadline := time.Now().Add(timeout)
	for {
		clients, servers = nil, nil
		c.mu.Lock()
		for _, e := range c.evs {
			if e.Method != method {
				continue
			}
			if e.Server {
				servers = append(servers, e)
			} else {
				clients = append(clients, e)
			}
		}
		c.mu.Unlock()
		if (len(clients) >= n && len(servers) >= n) || time.Now().After(deadline) {
			return clients, servers
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *collector) reset() {
	c.mu.Lock()
	c.evs = nil
	c.mu.Unlock()
}

// startManager runs a manager of the gRPC probes, with features, until the
// test ends.
func startManager(t *testing.T, h probes.Handler, features ...string) *probes.Manager {
	t.Helper()
	m := probes.NewManager([]probes.Spec{grpc.Probe}, features, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		m.Close()
	})
	return m
}

// Sixteen concurrent unary calls of one method, spread over four
// connections (1, 3, 5 and 7 calls): each client event names the very
// connection its call went out on — its local end is the peer the server
// saw for that call, its remote end the server's listener — and the same
// HTTP/2 stream id as the server event of that call, no two calls on one
// connection sharing one. A call is told apart on both sides by the status
// code it asks for.
func TestClientConn(t *testing.T) {
	forVersions(t, testClientConn)
}

func testClientConn(t *testing.T, bin string) {
	var got collector
	m := startManager(t, got.handle)
	a, bGRPC := startPair(t, bin, m)
	// The four connections are set up first.
	fanout(t, a, bGRPC, []string{"Ok@0", "Ok@1", "Ok@2", "Ok@3"}, "")
	if c, s := got.wait("/test.Echo/Ok", 4, 10*time.Second); len(c) != 4 || len(s) != 4 {
		t.Fatalf("warm-up: %d client and %d server events, want 4 each", len(c), len(s))
	}
	got.reset()

	var calls []string
	conn := map[int]int{} // code -> connection number
	for code := 1; code <= 16; code++ {
		k := 0
		switch {
		case code > 9:
			k = 3
		case code > 4:
			k = 2
		case code > 1:
			k = 1
		}
		conn[code] = k
		calls = append(calls, fmt.Sprintf("Status:%d@%d", code, k))
	}
	fanout(t, a, bGRPC, calls, "")
	clients, servers := got.wait("/test.Echo/Status", 16, 10*time.Second)
	if len(clients) != 16 || len(servers) != 16 {
		t.Fatalf("%d client and %d server events, want 16 each", len(clients), len(servers))
	}
	byCode := func(evs []*event.GRPC) map[int]*event.GRPC {
		out := map[int]*event.GRPC{}
		for _, e := range evs {
			if out[e.Code] != nil {
				t.Errorf("two %v events with code %d", e.Server, e.Code)
			}
			out[e.Code] = e
		}
		return out
	}
	cli, srv := byCode(clients), byCode(servers)
	listener := netip.MustParseAddrPort(bGRPC)
	locals := map[int]netip.AddrPort{} // connection number -> its client end
	streams := map[any]int{}           // (connection, stream) -> code
	for code := 1; code <= 16; code++ {
		c, s := cli[code], srv[code]
		if c == nil || s == nil {
			t.Errorf("code %d: client event %v, server event %v", code, c != nil, s != nil)
			continue
		}
		if !c.Conn.Known() {
			t.Errorf("code %d: client event without a connection", code)
			continue
		}
		if c.Conn.Remote != listener {
			t.Errorf("code %d: remote end %v, want the server's listener %v", code, c.Conn.Remote, listener)
		}
		if c.Conn.Local != s.Peer {
			t.Errorf("code %d: local end %v, but the server saw the call from %v", code, c.Conn.Local, s.Peer)
		}
		if c.Stream == 0 || c.Stream%2 != 1 || c.Stream != s.Stream {
			t.Errorf("code %d: client stream %d, server stream %d; want the same odd id", code, c.Stream, s.Stream)
		}
		type onStream struct {
			conn   netip.AddrPort
			stream uint32
		}
		if prev, dup := streams[onStream{c.Conn.Local, c.Stream}]; dup {
			t.Errorf("code %d: stream %d on %v, as code %d's", code, c.Stream, c.Conn.Local, prev)
		}
		streams[onStream{c.Conn.Local, c.Stream}] = code
		k := conn[code]
		if prev, ok := locals[k]; ok && prev != c.Conn.Local {
			t.Errorf("code %d: connection %d's local end %v, another call on it said %v", code, k, c.Conn.Local, prev)
		}
		locals[k] = c.Conn.Local
	}
	seen := map[netip.AddrPort]bool{}
	for _, l := range locals {
		seen[l] = true
	}
	if len(seen) != 4 {
		t.Errorf("local ends %v: want four distinct connections", locals)
	}
}
