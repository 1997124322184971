package probes_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/probes/inspect/inspecttest"
)

// The client event of an HTTP/1.x request names the TCP connection it went
// out on: the caller's end is the peer address the callee saw, the other
// end the callee's listener. With the symbol table (the dynamic type
// checked against *net.TCPConn's descriptor, PIE too) and without it (the
// value's shape checked instead).
func TestClientConn(t *testing.T) {
	needEBPF(t)
	for _, v := range []struct {
		name  string
		flags []string
	}{
		{"plain", nil},
		{"stripped", []string{"-ldflags=-s -w"}},
		{"pie", []string{"-buildmode=pie"}},
	} {
		t.Run(v.name, func(t *testing.T) {
			exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{Flags: v.flags})
			if err != nil {
				t.Fatal(err)
			}
			var (
				mu    sync.Mutex
				peers []string // RemoteAddr of each request the callee served
				conns []event.Conn
			)
			callee := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				peers = append(peers, r.RemoteAddr)
				mu.Unlock()
			}))
			defer callee.Close()
			addr := freeAddr(t)
			cmd := exec.Command(exe, addr)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			m := startManager(t, func(ev event.Event) {
				if e, ok := ev.(*event.HTTPClient); ok {
					mu.Lock()
					conns = append(conns, e.Conn)
					mu.Unlock()
				}
			})
			waitListening(t, addr)
			pid := cmd.Process.Pid
			if _, err := m.Attach(pid, &event.Process{PID: pid}); err != nil {
				t.Fatal(err)
			}
			const n = 3
			for i := 0; i < n; i++ {
				resp, err := http.Get(fmt.Sprintf("http://%s/call?to=%s/x%d", addr, callee.URL, i))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("call %d: status %d", i, resp.StatusCode)
				}
			}
			if err := m.Detach(pid); err != nil { // delivers every event
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(conns) != n || len(peers) != n {
				t.Fatalf("%d client events, %d requests served, want %d of each", len(conns), len(peers), n)
			}
			remote := netip.MustParseAddrPort(callee.Listener.Addr().String())
			for i, c := range conns {
				want := event.Conn{Local: netip.MustParseAddrPort(peers[i]), Remote: remote}
				if c != want {
					t.Errorf("request %d: Conn %v, want %v", i, c, want)
				}
			}
		})
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			return
		}
	}
	t.Fatalf("%s not listening", addr)
}
