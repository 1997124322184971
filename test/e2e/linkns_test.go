package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/sys/unix"

	"github.com/golens/golens/test/harness"
)

// netns creates a network namespace with only loopback up, removed when
// the test ends.
func netns(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		unavailable(t, "no ip command (iproute2): %v", err)
	}
	name := "golens-e2e-" + randHex(4)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		unavailable(t, "ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("loopback up in %s: %v: %s", name, err, out)
	}
	return name
}

// startIn runs a target inside network namespace ns (ip netns exec runs
// it in place: the pid is the target's).
func startIn(t *testing.T, ns, bin string, env []string, args ...string) *harness.App {
	t.Helper()
	app, err := harness.StartApp("ip", env, append([]string{"netns", "exec", ns, bin}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Stop)
	return app
}

// clientIn is an HTTP client whose connections are made inside network
// namespace ns: each dial runs on a thread of its own that enters ns and
// then ends with its goroutine (a locked thread is not reused).
func clientIn(ns string, keepAlive bool) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		done := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with us
			f, err := os.Open("/run/netns/" + ns)
			if err != nil {
				done <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				done <- result{nil, fmt.Errorf("enter %s: %w", ns, err)}
				return
			}
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			done <- result{c, err}
		}()
		r := <-done
		return r.c, r.err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: !keepAlive}}
}

// Two tenants, each in its own network namespace: A calls B over
// loopback, both at the same addresses in both namespaces (B on
// 127.0.0.1:18080, A's connection from 127.0.0.1:40001), at the same time,
// with the same method and path. A loopback address means nothing outside
// its namespace: each B span joins its own A's trace, never the other's.
func TestLinkingStaysInNetns(t *testing.T) {
	bin := buildApp(t, "httpserver", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recv.Close)
	type tenant struct {
		ns     string
		a, b   *harness.App
		client *http.Client
	}
	tenants := make([]*tenant, 2)
	args := []string{"--otlp-endpoint", recv.Addr(), "--otlp-insecure"}
	for i := range tenants {
		ns := netns(t)
		env := func(svc string) []string {
			return []string{fmt.Sprintf("OTEL_SERVICE_NAME=%s%d", svc, i+1), "GODEBUG=httpmuxgo121=0"}
		}
		tn := &tenant{ns: ns, client: clientIn(ns, true)}
		tn.b = startIn(t, ns, bin, env("svc-b"), "-addr", "127.0.0.1:18080")
		tn.a = startIn(t, ns, bin, env("svc-a"), "-addr", "127.0.0.1:18081")
		tenants[i] = tn
		args = append(args, "--pid", fmt.Sprint(tn.a.PID()), "--pid", fmt.Sprint(tn.b.PID()))
	}
	agent, err := harness.StartAgent(agentBin, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Stop(5 * time.Second) })
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}

	path := "/chain?from=" + url.QueryEscape("127.0.0.1:40001") + "&to=" + url.QueryEscape("http://127.0.0.1:18080/sleep?ms=100")
	const rounds = 5
	sent := map[string]int{} // trace id -> tenant
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		errs := make(chan error, len(tenants))
		for i, tn := range tenants {
			tid := randHex(16)
			sent[tid] = i
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("GET", "http://"+tn.a.Addr+path, nil)
				req.Header.Set("traceparent", "00-"+tid+"-"+randHex(8)+"-01")
				resp, err := tn.client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("tenant %d: status %d", i+1, resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	want := rounds * len(tenants) * 3
	if _, err := recv.WaitFor(want, 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, agent.Log())
	}
	time.Sleep(1500 * time.Millisecond) // a root that waited in vain is out by now
	spans := recv.Spans()
	if len(spans) != want {
		t.Errorf("%d spans, want %d", len(spans), want)
	}
	traces := byTrace(spans)
	for tid, i := range sent {
		n := fmt.Sprint(i + 1)
		var aSrv, aCli, bSrv []harness.Span
		for _, sp := range traces[tid] {
			switch svc := sp.Resource["service.name"]; {
			case svc == "svc-a"+n && sp.Kind == tracepb.Span_SPAN_KIND_SERVER:
				aSrv = append(aSrv, sp)
			case svc == "svc-a"+n && sp.Kind == tracepb.Span_SPAN_KIND_CLIENT:
				aCli = append(aCli, sp)
			case svc == "svc-b"+n && sp.Kind == tracepb.Span_SPAN_KIND_SERVER:
				bSrv = append(bSrv, sp)
			default:
				t.Errorf("tenant %s trace %s holds a span of %v (%v)", n, tid, svc, sp.Kind)
			}
		}
		if len(aSrv) != 1 || len(aCli) != 1 || len(bSrv) != 1 {
			t.Errorf("tenant %s trace %s: A server %d, A client %d, B server %d; want 1 each", n, tid, len(aSrv), len(aCli), len(bSrv))
			continue
		}
		if aCli[0].ParentSpanID != aSrv[0].SpanID || bSrv[0].ParentSpanID != aCli[0].SpanID {
			t.Errorf("tenant %s: B's parent %s, want A's client span %s", n, bSrv[0].ParentSpanID, aCli[0].SpanID)
		}
	}
	if t.Failed() {
		for _, sp := range spans {
			t.Logf("%s %v trace=%s span=%s parent=%s peer=%v:%v", sp.Resource["service.name"], sp.Kind, sp.TraceID[:8], sp.SpanID, sp.ParentSpanID, sp.Attrs["client.address"], sp.Attrs["client.port"])
		}
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if v := scrapeValue(t, text, "golens_spans_linked_total"); v != rounds*float64(len(tenants)) {
		t.Errorf("golens_spans_linked_total %v, want %d", v, rounds*len(tenants))
	}
	for _, r := range []string{"no_client_span", "lookup_busy", "ambiguous"} {
		if v := scrapeValue(t, text, `golens_spans_unlinked_total{reason="`+r+`"}`); v != 0 {
			t.Errorf("unlinked %s %v, want 0", r, v)
		}
	}
}

// A client golens does not watch, one connection per request, closed by
// the client (its socket then sits in TIME_WAIT, owned by nobody): the
// server's spans are not held for a caller that is not coming, and nothing
// counts them as failed links.
func TestUnwatchedClientNotHeld(t *testing.T) {
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recv.Close)
	app, err := harness.StartApp(buildApp(t, "httpserver", harness.Variant{}), []string{"OTEL_SERVICE_NAME=plain"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Stop)
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(app.PID()), "--otlp-endpoint", recv.Addr(), "--otlp-insecure")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Stop(5 * time.Second) })
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}

	// Two kinds of client, in turn: one with keep-alives off (it asks
	// the server to close), and one that closes the connection itself
	// once the answer is read, as curl does.
	noKeepAlive := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	closer := &http.Transport{}
	closing := &http.Client{Transport: closer, Timeout: 10 * time.Second}
	const n = 30
	var heldSum float64
	samples := 0
	var started time.Time
	for i := 0; i < n; i++ {
		if i == 4 {
			started = time.Now()
		}
		c := noKeepAlive
		if i%2 == 1 {
			c = closing
		}
		resp, err := c.Get("http://" + app.Addr + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		closer.CloseIdleConnections()
		time.Sleep(50 * time.Millisecond)
		// Spans held now, sampled once per request from the fifth on:
		// their mean over the run, divided by the request rate, is the
		// mean time a span is held (Little's law).
		if i >= 4 {
			text, err := agent.Metrics()
			if err != nil {
				t.Fatal(err)
			}
			heldSum += scrapeValue(t, text, "golens_spans_held")
			samples++
		}
	}
	last := time.Now()
	rate := float64(samples) / last.Sub(started).Seconds()
	meanHold := time.Duration(heldSum / float64(samples) / rate * float64(time.Second))
	// Out of the linker at once, a span then waits at most the export
	// batch's second.
	if _, err := recv.WaitFor(n, 1500*time.Millisecond); err != nil {
		t.Fatalf("%v within 1.5 s of the last request\n%s", err, agent.Log())
	}
	t.Logf("%d spans within %s of the last request; a span held %s on average", n, time.Since(last).Round(time.Millisecond), meanHold.Round(time.Millisecond))
	// At most the linker's settle time (250 ms) and its 100 ms tick, for
	// a client end found closed; a caller's window would be 1 s.
	if meanHold > 450*time.Millisecond {
		t.Errorf("a span held %s on average, want well under the 1 s window", meanHold)
	}
	time.Sleep(1200 * time.Millisecond)
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"no_client_span", "lookup_busy", "ambiguous"} {
		if v := scrapeValue(t, text, `golens_spans_unlinked_total{reason="`+r+`"}`); v != 0 {
			t.Errorf("unlinked %s %v, want 0", r, v)
		}
	}
	for _, sp := range recv.Spans() {
		if sp.ParentSpanID != "" {
			t.Errorf("span %s has parent %s; its client is not watched", sp.SpanID, sp.ParentSpanID)
		}
	}
	if got := len(recv.Spans()); got != n {
		t.Errorf("%d spans, want %d", got, n)
	}
}

// A calls B four times at once with the same method and path, both
// watched: time alone cannot tell which of B's requests came from which
// call. So every B span that is linked sits under the call of A that
// went out on its connection (B's peer is that call's local end), no
// call has two, and every other B span is its own trace, counted: never
// a guessed parent.
func TestSameNodeLinkingAmbiguous(t *testing.T) {
	s := startSetup(t, harness.Variant{}, true)
	path := "/fanout?n=4&to=" + url.QueryEscape("http://"+s.b.Addr+"/sleep?ms=20")
	const rounds = 3
	unparented := 0
	for i := 0; i < rounds; i++ {
		before := len(s.recv.Spans())
		tid, pid := randHex(16), randHex(8)
		s.get(t, path, "00-"+tid+"-"+pid+"-01", 200)
		if _, err := s.recv.WaitFor(before+9, 10*time.Second); err != nil {
			t.Fatalf("#%d: %v\n%s", i, err, s.agent.Log())
		}
		time.Sleep(1200 * time.Millisecond) // a root that waited in vain is out by now
		got := s.recv.Spans()[before:]
		if len(got) != 9 {
			t.Fatalf("#%d: %d spans, want 9", i, len(got))
		}
		var aSrv, aCli, bSrv []harness.Span
		for _, sp := range got {
			switch svc := sp.Resource["service.name"]; {
			case svc == "svc-a" && sp.Kind == tracepb.Span_SPAN_KIND_SERVER:
				aSrv = append(aSrv, sp)
			case svc == "svc-a" && sp.Kind == tracepb.Span_SPAN_KIND_CLIENT:
				aCli = append(aCli, sp)
			case svc == "svc-b" && sp.Kind == tracepb.Span_SPAN_KIND_SERVER:
				bSrv = append(bSrv, sp)
			}
		}
		if len(aSrv) != 1 || len(aCli) != 4 || len(bSrv) != 4 {
			t.Fatalf("#%d: A server %d, A client %d, B server %d; want 1, 4, 4", i, len(aSrv), len(aCli), len(bSrv))
		}
		if aSrv[0].TraceID != tid || aSrv[0].ParentSpanID != pid {
			t.Errorf("#%d: A server in trace %s under %s, want %s under %s", i, aSrv[0].TraceID, aSrv[0].ParentSpanID, tid, pid)
		}
		for _, cl := range aCli {
			if cl.TraceID != tid || cl.ParentSpanID != aSrv[0].SpanID {
				t.Errorf("#%d: A client in trace %s under %s, want under A's server span", i, cl.TraceID, cl.ParentSpanID)
			}
		}
		taken := map[string]bool{}
		for _, b := range bSrv {
			var parent *harness.Span
			for j := range aCli {
				if aCli[j].SpanID == b.ParentSpanID {
					parent = &aCli[j]
				}
			}
			if b.ParentSpanID == "" {
				unparented++
				if b.TraceID == tid {
					t.Errorf("#%d: B span %s without parent in A's trace", i, b.SpanID)
				}
				continue
			}
			if parent == nil || !onConn(b, *parent) || b.TraceID != tid {
				t.Errorf("#%d: B span %s from %v:%v under %s in trace %s: not the call on its connection", i, b.SpanID, b.Attrs["client.address"], b.Attrs["client.port"], b.ParentSpanID, b.TraceID)
			}
			if taken[b.ParentSpanID] {
				t.Errorf("#%d: two B spans under A's call %s", i, b.ParentSpanID)
			}
			taken[b.ParentSpanID] = true
		}
	}
	text, err := s.agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	linked := scrapeValue(t, text, "golens_spans_linked_total")
	ambiguous := scrapeValue(t, text, `golens_spans_unlinked_total{reason="ambiguous"}`)
	// A call read after its callee was released (a loaded machine can
	// delay A's event past the settle time) is a lost link too, named.
	late := scrapeValue(t, text, `golens_spans_unlinked_total{reason="no_client_span"}`)
	late += scrapeValue(t, text, `golens_spans_unlinked_total{reason="no_conn"}`)
	t.Logf("of %d B spans, %v linked, %v ambiguous, %v too late or without a connection", 4*rounds, linked, ambiguous, late)
	if int(ambiguous+late) != unparented || int(linked) != 4*rounds-unparented {
		t.Errorf("linked %v, ambiguous %v, no_client_span %v; want %d linked and %d in all unlinked", linked, ambiguous, late, 4*rounds-unparented, unparented)
	}
	if v := scrapeValue(t, text, `golens_spans_unlinked_total{reason="lookup_busy"}`); v != 0 {
		t.Errorf("unlinked lookup_busy %v, want 0", v)
	}
}

// vethPair joins two namespaces with a veth pair, addresses a and b
// (CIDR) on either end.
func vethPair(t *testing.T, ns1, a, ns2, b string) {
	t.Helper()
	x, y := "gl"+randHex(4)+"a", "gl"+randHex(4)+"b"
	for _, args := range [][]string{
		{"link", "add", x, "netns", ns1, "type", "veth", "peer", "name", y, "netns", ns2},
		{"-n", ns1, "addr", "add", a, "dev", x},
		{"-n", ns2, "addr", "add", b, "dev", y},
		{"-n", ns1, "link", "set", x, "up"},
		{"-n", ns2, "link", "set", y, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			unavailable(t, "ip %v: %v: %s", args, err, out)
		}
	}
}

// Pods on one node: A in one network namespace calls B in another over
// their own addresses (a veth pair, as a CNI bridge would give). The peer
// is not loopback, so its client end is looked for in every watched
// namespace, as the exact other end of B's connection: found in A's, and
// B joins A's trace.
func TestLinkingAcrossNetns(t *testing.T) {
	bin := buildApp(t, "httpserver", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recv.Close)
	nsA, nsB := netns(t), netns(t)
	net3 := fmt.Sprintf("10.231.%d", 1+randByte()%250)
	vethPair(t, nsA, net3+".1/30", nsB, net3+".2/30")
	b := startIn(t, nsB, bin, []string{"OTEL_SERVICE_NAME=svc-b", "GODEBUG=httpmuxgo121=0"}, "-addr", net3+".2:18080")
	a := startIn(t, nsA, bin, []string{"OTEL_SERVICE_NAME=svc-a", "GODEBUG=httpmuxgo121=0"}, "-addr", "127.0.0.1:18081")
	agent, err := harness.StartAgent(agentBin, nil, "--otlp-endpoint", recv.Addr(), "--otlp-insecure",
		"--pid", fmt.Sprint(a.PID()), "--pid", fmt.Sprint(b.PID()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Stop(5 * time.Second) })
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	client := clientIn(nsA, true)
	const rounds = 4
	var tids []string
	for i := 0; i < rounds; i++ {
		tid := randHex(16)
		tids = append(tids, tid)
		req, _ := http.NewRequest("GET", "http://"+a.Addr+"/chain?to="+url.QueryEscape("http://"+b.Addr+"/echo/pod"), nil)
		req.Header.Set("traceparent", "00-"+tid+"-"+randHex(8)+"-01")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if _, err := recv.WaitFor(3*rounds, 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, agent.Log())
	}
	time.Sleep(500 * time.Millisecond) // nothing extra may follow
	traces := byTrace(recv.Spans())
	if len(recv.Spans()) != 3*rounds || len(traces) != rounds {
		t.Errorf("%d spans in %d traces, want %d in %d", len(recv.Spans()), len(traces), 3*rounds, rounds)
	}
	for _, tid := range tids {
		tr := traces[tid]
		cli := kindOf(tr, tracepb.Span_SPAN_KIND_CLIENT)
		var bSrv []harness.Span
		for _, sp := range kindOf(tr, tracepb.Span_SPAN_KIND_SERVER) {
			if sp.Resource["service.name"] == "svc-b" {
				bSrv = append(bSrv, sp)
			}
		}
		if len(cli) != 1 || len(bSrv) != 1 || bSrv[0].ParentSpanID != cli[0].SpanID {
			t.Errorf("trace %s: %d A client, %d B server spans, B not under A's call", tid, len(cli), len(bSrv))
		}
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if v := scrapeValue(t, text, "golens_spans_linked_total"); v != rounds {
		t.Errorf("golens_spans_linked_total %v, want %d", v, rounds)
	}
}

func randByte() int {
	var b [1]byte
	fmt.Sscanf(randHex(1), "%02x", &b[0])
	return int(b[0])
}
