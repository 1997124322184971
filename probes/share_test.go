package probes_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/probes/goruntime"
	"github.com/golens/golens/probes/inspect/inspecttest"
	"github.com/golens/golens/probes/nethttp"
)

// Two processes of one binary run the same loaded programs (loaded once,
// each target with its own links) on one instance of each pid-keyed map,
// the one the manager created for the node; releasing one deletes what it left
// in those maps (a request still in flight, its context) and leaves the
// other's requests traced exactly: every one delivered once, as its own,
// and a call from its handler parented on that handler's span.
func TestTargetsShareMaps(t *testing.T) {
	needEBPF(t)
	exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// An upstream that holds each request until the test lets it go, and
	// answers /fast at once.
	held, release := make(chan struct{}, 16), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(ln)
	defer up.Close()
	upURL := "http://" + ln.Addr().String()

	start := func() (int, string) {
		addr := freeAddr(t)
		cmd := exec.Command(exe, addr)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitListening(t, addr)
		return cmd.Process.Pid, addr
	}
	pidA, addrA := start()
	pidB, addrB := start()

	var (
		mu      sync.Mutex
		servers = map[string][]*event.HTTPServer{} // by service
		clients = map[string][]*event.HTTPClient{}
	)
	m := startManager(t, func(ev event.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *event.HTTPServer:
			servers[e.Process.ServiceName] = append(servers[e.Process.ServiceName], e)
		case *event.HTTPClient:
			clients[e.Process.ServiceName] = append(clients[e.Process.ServiceName], e)
		}
	}, probes.FeatureGoroutines) // the app's calls drop the request's context: found by goroutine
	for pid, service := range map[int]string{pidA: "a", pidB: "b"} {
		began := time.Now()
		if _, err := m.Attach(pid, &event.Process{PID: pid, ServiceName: service}); err != nil {
			t.Fatal(err)
		}
		t.Logf("attach of %s took %v", service, time.Since(began))
	}

	// One instance of each, the manager's: the same map in both targets'
	// objects; a map not shared (a per-CPU scratch) is the target's own.
	var perPid []string
	for _, s := range []probes.Spec{nethttp.Probe, goruntime.Probe} {
		perPid = append(perPid, s.PerPid...)
	}
	shared := map[string]*ebpf.Map{}
	for _, name := range perPid {
		mp, err := m.Shared(name)
		if err != nil || mp == nil {
			t.Fatalf("shared map %s: %v, %v", name, mp, err)
		}
		shared[name] = mp
		info, err := mp.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		a, b := probes.TargetMapIDs(m, pidA, name), probes.TargetMapIDs(m, pidB, name)
		if len(a) != 1 || len(b) != 1 || a[0] != uint32(id) || b[0] != uint32(id) {
			t.Errorf("%s: map ids %v in a's objects, %v in b's, want the shared one's [%d] in each", name, a, b, id)
		}
	}
	// One loaded object per family for both (same binary file, not PIE:
	// same constants), each target with its own links.
	for _, prog := range []string{"uprobe_server_entry", "uprobe_server_return", "uprobe_stw_entry"} {
		a, b := probes.TargetProgIDs(m, pidA, prog), probes.TargetProgIDs(m, pidB, prog)
		if len(a) != 1 || len(b) != 1 || a[0] != b[0] {
			t.Errorf("%s: program ids %v in a's objects, %v in b's, want one, the same", prog, a, b)
		}
	}
	if live, loads := probes.Loads(m); live != 2 || loads != 2 {
		t.Errorf("%d objects in the kernel, %d loaded, want 2 and 2 (net/http and runtime, once for both targets)", live, loads)
	}

	get := func(url string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	const n = 10
	for i := 0; i < n; i++ {
		get(fmt.Sprintf("http://%s/a-%d", addrA, i))
		get(fmt.Sprintf("http://%s/b-%d", addrB, i))
	}
	// a's handler calls upstream and waits: its server request, its
	// context and its client request are in the shared maps, under a's pid.
	aDone := make(chan struct{})
	go func() {
		defer close(aDone)
		if resp, err := http.Get(fmt.Sprintf("http://%s/call?to=%s/hold", addrA, upURL)); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("a's call never reached the upstream")
	}
	for _, name := range []string{"server_reqs", "ctx_spans", "client_reqs"} {
		if c := countPid(t, shared[name], pidA); c != 1 {
			t.Errorf("%s: %d entries of a's pid while its request is in flight, want 1", name, c)
		}
	}
	// The handler's goroutine and those its call started (the transport's).
	if c := countPid(t, shared["goid_spans"], pidA); c < 1 {
		t.Errorf("goid_spans: %d entries of a's pid while its request is in flight, want some", c)
	}
	if err := m.Detach(pidA); err != nil {
		t.Fatal(err)
	}
	for _, name := range perPid {
		if c := countPid(t, shared[name], pidA); c != 0 {
			t.Errorf("%s: %d entries of a's pid after its release, want 0", name, c)
		}
	}
	if live, _ := probes.Loads(m); live != 2 {
		t.Errorf("%d objects in the kernel after a's release, want b's 2", live)
	}
	unblock()
	<-aDone

	// b goes on, traced exactly.
	for i := n; i < 2*n; i++ {
		get(fmt.Sprintf("http://%s/b-%d", addrB, i))
	}
	get(fmt.Sprintf("http://%s/call?to=%s/fast", addrB, upURL))
	if err := m.Detach(pidB); err != nil {
		t.Fatal(err)
	}
	if live, loads := probes.Loads(m); live != 0 || loads != 2 {
		t.Errorf("%d objects in the kernel after both releases, %d loaded, want 0 and 2", live, loads)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(servers) != 2 || len(clients) != 1 {
		t.Errorf("server events of %d services, client events of %d, want a and b, b", len(servers), len(clients))
	}
	checkServed := func(service string, want []string) {
		t.Helper()
		got := map[string]int{}
		spans := map[event.SpanID]bool{}
		for _, e := range servers[service] {
			got[e.Path]++
			spans[e.SpanID] = true
			if e.Process.PID != map[string]int{"a": pidA, "b": pidB}[service] {
				t.Errorf("%s: event of pid %d", service, e.Process.PID)
			}
		}
		if len(servers[service]) != len(want) || len(spans) != len(want) {
			t.Errorf("%s: %d server events with %d span ids, want %d", service, len(servers[service]), len(spans), len(want))
		}
		for _, p := range want {
			if got[p] != 1 {
				t.Errorf("%s: %s served %d times, want 1 (all: %v)", service, p, got[p], got)
			}
		}
	}
	var wantA, wantB []string
	for i := 0; i < n; i++ {
		wantA = append(wantA, fmt.Sprintf("/a-%d", i))
	}
	for i := 0; i < 2*n; i++ {
		wantB = append(wantB, fmt.Sprintf("/b-%d", i))
	}
	checkServed("a", wantA) // its held call was in flight at the release: no span
	checkServed("b", append(wantB, "/call"))
	if cs := clients["b"]; len(cs) != 1 {
		t.Errorf("b: %d client events, want 1", len(cs))
	} else {
		var call *event.HTTPServer
		for _, e := range servers["b"] {
			if e.Path == "/call" {
				call = e
			}
		}
		c := cs[0]
		if call == nil || c.TraceID != call.TraceID || c.Parent != call.SpanID || c.Link != event.LinkGoroutine || !strings.HasSuffix(c.Path, "/fast") {
			t.Errorf("b's call: client span %s %s trace %s parent %s link %v, want /fast under server span %+v", c.Method, c.Path, c.TraceID, c.Parent, c.Link, call)
		}
	}
}

// countPid counts mp's entries whose key begins with pid.
func countPid(t *testing.T, mp *ebpf.Map, pid int) int {
	t.Helper()
	var want [4]byte
	binary.NativeEndian.PutUint32(want[:], uint32(pid))
	n := 0
	var key []byte
	it := mp.Iterate()
	for it.Next(&key, new([]byte)) {
		if len(key) >= 4 && [4]byte(key[:4]) == want {
			n++
		}
	}
	if err := it.Err(); err != nil {
		t.Fatalf("walk %s: %v", mp, err)
	}
	return n
}
