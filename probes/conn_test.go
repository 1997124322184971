package probes_test

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
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
// value's shape checked instead, offsets from the generated tables for
// every supported Go release). A request over TLS names the TCP connection
// under the *tls.Conn.
func TestClientConn(t *testing.T) {
	needEBPF(t)
	type variant struct {
		name, toolchain string
		flags           []string
	}
	variants := []variant{
		{"plain", "", nil},
		{"stripped", "", []string{"-ldflags=-s -w"}},
		{"pie", "", []string{"-buildmode=pie"}},
	}
	// Stripped, every supported release: the offsets come from the
	// generated tables and only the value's shape vouches for its type.
	for _, tc := range []string{"go1.21.13", "go1.22.12", "go1.23.12", "go1.24.13", "go1.25.14", "go1.27.3"} {
		variants = append(variants, variant{"stripped-" + tc, tc, []string{"-ldflags=-s -w"}})
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{Toolchain: v.toolchain, Flags: v.flags})
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
			// A TLS callee: the target's connection to it is a *tls.Conn,
			// whose TCP connection is read one level down (the target
			// trusts its certificate through SSL_CERT_FILE).
			var tlsPeer string
			tlsCallee := httptest.NewTLSServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				mu.Lock()
				tlsPeer = r.RemoteAddr
				mu.Unlock()
			}))
			defer tlsCallee.Close()
			ca := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsCallee.Certificate().Raw}), 0o644); err != nil {
				t.Fatal(err)
			}
			addr := freeAddr(t)
			cmd := exec.Command(exe, addr)
			cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+ca)
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
			for i := 0; i <= n; i++ {
				to := fmt.Sprintf("%s/x%d", callee.URL, i)
				if i == n {
					to = tlsCallee.URL + "/tls"
				}
				resp, err := http.Get(fmt.Sprintf("http://%s/call?to=%s", addr, to))
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
			if len(conns) != n+1 || len(peers) != n {
				t.Fatalf("%d client events, %d plain requests served, want %d and %d", len(conns), len(peers), n+1, n)
			}
			wantTLS := event.Conn{Local: netip.MustParseAddrPort(tlsPeer), Remote: netip.MustParseAddrPort(tlsCallee.Listener.Addr().String())}
			if c := conns[n]; c != wantTLS {
				t.Errorf("request over TLS: Conn %v, want %v", c, wantTLS)
			}
			remote := netip.MustParseAddrPort(callee.Listener.Addr().String())
			for i, c := range conns[:n] {
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
