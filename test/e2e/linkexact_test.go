package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/golens/golens/test/harness"
)

// getAll sends GET path(i) to addr for every i at once, each request
// with a traceparent of its own; it returns the trace ids, by i.
func getAll(t *testing.T, addr string, n int, path func(i int) string) []string {
	t.Helper()
	tids := make([]string, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		tids[i] = randHex(16)
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", "http://"+addr+path(i), nil)
			req.Header.Set("traceparent", "00-"+tids[i]+"-"+randHex(8)+"-01")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("GET %s: %d", path(i), resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return tids
}

// onConn tells whether callee span b was served on the connection client
// span c went out on: b's peer is c's local end.
func onConn(b, c harness.Span) bool {
	return b.Attrs["client.address"] != nil && b.Attrs["client.port"] != nil &&
		fmt.Sprint(b.Attrs["client.address"]) == fmt.Sprint(c.Attrs["network.local.address"]) &&
		fmt.Sprint(b.Attrs["client.port"]) == fmt.Sprint(c.Attrs["network.local.port"])
}

// services splits a trace's spans into A's server spans, A's client
// spans and B's server spans.
func services(spans []harness.Span) (aSrv, aCli, bSrv []harness.Span) {
	for _, sp := range spans {
		switch svc := sp.Resource["service.name"]; {
		case svc == "svc-a" && sp.Kind == tracepb.Span_SPAN_KIND_SERVER:
			aSrv = append(aSrv, sp)
		case svc == "svc-a" && sp.Kind == tracepb.Span_SPAN_KIND_CLIENT:
			aCli = append(aCli, sp)
		case svc == "svc-b" && sp.Kind == tracepb.Span_SPAN_KIND_SERVER:
			bSrv = append(bSrv, sp)
		}
	}
	return
}

// A calls B with identical requests (same method and path) at once, both
// watched on one node, no --inject-context: every one of B's spans joins
// exactly the trace of the request that caused it, under exactly the
// client span that went out on its connection. Nothing is left unlinked
// and nothing is guessed. First with connections the test chose (each of
// A's requests calls B from a local port of its own, so which B span is
// whose is known without asking golens), 4 and 16 at once; then through
// A's shared connection pool, 16 at once; then a handler fanning out 3
// identical calls at once.
func TestSameNodeLinkingExact(t *testing.T) {
	s := startSetup(t, harness.Variant{}, true)
	sleep := url.QueryEscape("http://" + s.b.Addr + "/sleep?ms=20")
	// Local ports for A's calls, out of the ephemeral range, picked anew
	// per run so two runs at once on the machine do not collide.
	base := 20000 + rand.IntN(10000)/16*16
	requests, calls := 0, 0

	check := func(t *testing.T, name string, before int, tids []string, fanout int, ports []int) {
		t.Helper()
		want := len(tids) * (1 + 2*fanout)
		if _, err := s.recv.WaitFor(before+want, 15*time.Second); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, s.agent.Log())
		}
		time.Sleep(1200 * time.Millisecond) // a root that waited in vain is out by now
		got := s.recv.Spans()[before:]
		if len(got) != want {
			t.Errorf("%s: %d spans, want %d", name, len(got), want)
		}
		traces := byTrace(got)
		for i, tid := range tids {
			aSrv, aCli, bSrv := services(traces[tid])
			if len(aSrv) != 1 || len(aCli) != fanout || len(bSrv) != fanout {
				t.Errorf("%s #%d: trace %s has A server %d, A client %d, B server %d; want 1, %d, %d",
					name, i, tid, len(aSrv), len(aCli), len(bSrv), fanout, fanout)
				continue
			}
			children := map[string]int{}
			for _, c := range aCli {
				if c.ParentSpanID != aSrv[0].SpanID {
					t.Errorf("%s #%d: A client span %s under %s, want A's server span", name, i, c.SpanID, c.ParentSpanID)
				}
				if ports != nil && fmt.Sprint(c.Attrs["network.local.port"]) != fmt.Sprint(ports[i]) {
					t.Errorf("%s #%d: A's call from port %v, want %d", name, i, c.Attrs["network.local.port"], ports[i])
				}
			}
			for _, b := range bSrv {
				var parent *harness.Span
				for j := range aCli {
					if aCli[j].SpanID == b.ParentSpanID {
						parent = &aCli[j]
					}
				}
				switch {
				case parent == nil:
					t.Errorf("%s #%d: B span %s under %q, not under a call of its request", name, i, b.SpanID, b.ParentSpanID)
				case !onConn(b, *parent):
					t.Errorf("%s #%d: B span %s from %v:%v under the call from %v:%v", name, i, b.SpanID,
						b.Attrs["client.address"], b.Attrs["client.port"], parent.Attrs["network.local.address"], parent.Attrs["network.local.port"])
				default:
					children[parent.SpanID]++
				}
				if ports != nil && fmt.Sprint(b.Attrs["client.port"]) != fmt.Sprint(ports[i]) {
					t.Errorf("%s #%d: B span from port %v in the trace of the request calling from %d", name, i, b.Attrs["client.port"], ports[i])
				}
			}
			for _, c := range aCli {
				if children[c.SpanID] != 1 {
					t.Errorf("%s #%d: A's call %s has %d B spans, want 1", name, i, c.SpanID, children[c.SpanID])
				}
			}
		}
		if t.Failed() {
			if text, err := s.agent.Metrics(); err == nil {
				for _, r := range []string{"no_client_span", "lookup_busy", "ambiguous", "no_conn"} {
					t.Logf("unlinked %s: %v", r, scrapeValue(t, text, `golens_spans_unlinked_total{reason="`+r+`"}`))
				}
			}
			for _, sp := range got {
				t.Logf("%s %v trace=%s span=%s parent=%s peer=%v:%v local=%v:%v %s–%s", sp.Resource["service.name"], sp.Kind, sp.TraceID[:8], sp.SpanID, sp.ParentSpanID,
					sp.Attrs["client.address"], sp.Attrs["client.port"], sp.Attrs["network.local.address"], sp.Attrs["network.local.port"],
					sp.Start.Format("05.000000"), sp.End.Format("05.000000"))
			}
		}
		requests++
		calls += len(tids) * fanout
	}

	for _, n := range []int{4, 16} {
		for round := range 2 {
			ports := make([]int, n)
			for i := range ports {
				ports[i] = base + i
			}
			before := len(s.recv.Spans())
			tids := getAll(t, s.a.Addr, n, func(i int) string {
				return "/chain?from=" + url.QueryEscape(fmt.Sprintf("127.0.0.1:%d", ports[i])) + "&to=" + sleep
			})
			check(t, fmt.Sprintf("%d from chosen ports, round %d", n, round), before, tids, 1, ports)
		}
	}
	for round := range 2 {
		before := len(s.recv.Spans())
		tids := getAll(t, s.a.Addr, 16, func(int) string { return "/chain?to=" + sleep })
		check(t, fmt.Sprintf("16 through A's pool, round %d", round), before, tids, 1, nil)
	}
	for round := range 5 {
		before := len(s.recv.Spans())
		tids := getAll(t, s.a.Addr, 1, func(int) string { return "/fanout?n=3&to=" + sleep })
		check(t, fmt.Sprintf("fan-out of 3, round %d", round), before, tids, 3, nil)
	}

	text, err := s.agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if v := scrapeValue(t, text, "golens_spans_linked_total"); v != float64(calls) {
		t.Errorf("golens_spans_linked_total %v, want %d", v, calls)
	}
	for _, r := range []string{"no_client_span", "lookup_busy", "ambiguous", "no_conn"} {
		if v := scrapeValue(t, text, `golens_spans_unlinked_total{reason="`+r+`"}`); v != 0 {
			t.Errorf("unlinked %s %v, want 0", r, v)
		}
	}
	t.Logf("%d batches, %d B spans, each under its own call", requests, calls)
}

// HTTP → gRPC client → gRPC server, both watched on one node: a handler
// making 4 identical unary calls at once, each on a ClientConn (a TCP
// connection) of its own, 5 requests in a row: every gRPC server span
// joins its request's trace under exactly the client span on its
// connection. Then 12 requests at once each making the same call on one
// shared connection (12 HTTP/2 streams on it): both probes read the
// stream id, so every server span joins exactly the call of its own
// stream (its parent on its connection, containing it, no call parenting
// two), and none is counted ambiguous.
func TestSameNodeLinkingExactGRPC(t *testing.T) {
	bin := buildApp(t, "grpcapp", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recv.Close)
	bGRPC, _ := harness.FreeAddr()
	b, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=grpc-b"}, "-grpc-addr", bGRPC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	a, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=grpc-a", "GODEBUG=httpmuxgo121=0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(a.PID()), "--pid", fmt.Sprint(b.PID()),
		"--otlp-endpoint", recv.Addr(), "--otlp-insecure")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Stop(5 * time.Second) })
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	target := url.QueryEscape(bGRPC)
	split := func(spans []harness.Span) (httpSrv, cli, srv []harness.Span) {
		for _, s := range spans {
			switch {
			case s.Kind == tracepb.Span_SPAN_KIND_CLIENT:
				cli = append(cli, s)
			case s.Attrs["rpc.system"] == "grpc":
				srv = append(srv, s)
			default:
				httpSrv = append(httpSrv, s)
			}
		}
		return
	}

	const rounds = 5
	for round := range rounds {
		before := len(recv.Spans())
		tid := getAll(t, a.Addr, 1, func(int) string { return "/fanout?target=" + target + "&calls=Ok@1,Ok@2,Ok@3,Ok@4" })[0]
		if _, err := recv.WaitFor(before+9, 15*time.Second); err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, agent.Log())
		}
		time.Sleep(1200 * time.Millisecond)
		got := recv.Spans()[before:]
		httpSrv, cli, srv := split(byTrace(got)[tid])
		if len(got) != 9 || len(httpSrv) != 1 || len(cli) != 4 || len(srv) != 4 {
			t.Errorf("round %d: %d spans, in its trace HTTP %d, client %d, server %d; want 9 and 1, 4, 4", round, len(got), len(httpSrv), len(cli), len(srv))
			continue
		}
		children := map[string]int{}
		for _, s := range srv {
			for _, c := range cli {
				if c.SpanID == s.ParentSpanID && onConn(s, c) {
					children[c.SpanID]++
				}
			}
		}
		for _, c := range cli {
			if c.ParentSpanID != httpSrv[0].SpanID || children[c.SpanID] != 1 {
				t.Errorf("round %d: client span %s under %s with %d server spans on its connection; want under the HTTP span, 1",
					round, c.SpanID, c.ParentSpanID, children[c.SpanID])
			}
		}
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if v := scrapeValue(t, text, "golens_spans_linked_total"); v != 4*rounds {
		t.Errorf("golens_spans_linked_total %v, want %d", v, 4*rounds)
	}
	for _, r := range []string{"no_client_span", "lookup_busy", "ambiguous", "no_conn"} {
		if v := scrapeValue(t, text, `golens_spans_unlinked_total{reason="`+r+`"}`); v != 0 {
			t.Errorf("unlinked %s %v, want 0", r, v)
		}
	}

	// One connection, 12 identical streams at once.
	const shared = 12
	unlinked := 0
	for round := range 2 {
		before := len(recv.Spans())
		tids := getAll(t, a.Addr, shared, func(int) string { return "/call?target=" + target + "&method=Ok" })
		if _, err := recv.WaitFor(before+3*shared, 15*time.Second); err != nil {
			t.Fatalf("shared round %d: %v\n%s", round, err, agent.Log())
		}
		time.Sleep(1200 * time.Millisecond)
		got := recv.Spans()[before:]
		_, cli, srv := split(got)
		if len(got) != 3*shared || len(cli) != shared || len(srv) != shared {
			t.Fatalf("shared round %d: %d spans, %d client, %d server; want %d, %d, %d", round, len(got), len(cli), len(srv), 3*shared, shared, shared)
		}
		conns := map[string]bool{}
		for _, c := range cli {
			if c.Attrs["network.local.port"] == nil {
				t.Fatalf("shared round %d: client span %s says no connection", round, c.SpanID)
			}
			conns[fmt.Sprint(c.Attrs["network.local.port"])] = true
		}
		if len(conns) != 1 {
			t.Errorf("shared round %d: client calls on %d connections, want 1", round, len(conns))
		}
		traces := map[string]bool{}
		for _, tid := range tids {
			traces[tid] = true
		}
		taken := map[string]bool{}
		for _, s := range srv {
			if s.ParentSpanID == "" {
				unlinked++
				continue
			}
			var parent *harness.Span
			for j := range cli {
				if cli[j].SpanID == s.ParentSpanID {
					parent = &cli[j]
				}
			}
			if parent == nil || !onConn(s, *parent) || parent.TraceID != s.TraceID || !traces[s.TraceID] ||
				s.Start.Before(parent.Start) || s.End.After(parent.End) || taken[parent.SpanID] {
				t.Errorf("shared round %d: server span %s under %s: not the one call on its connection containing it", round, s.SpanID, s.ParentSpanID)
				continue
			}
			taken[parent.SpanID] = true
		}
	}
	text, err = agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	linked := scrapeValue(t, text, "golens_spans_linked_total") - 4*rounds
	ambiguous := scrapeValue(t, text, `golens_spans_unlinked_total{reason="ambiguous"}`)
	late := scrapeValue(t, text, `golens_spans_unlinked_total{reason="no_client_span"}`)
	t.Logf("shared connection: of %d server spans, %v linked, %v ambiguous, %v too late", 2*shared, linked, ambiguous, late)
	if int(linked) != 2*shared || unlinked != 0 || ambiguous != 0 || late != 0 {
		t.Errorf("shared connection: linked %v, ambiguous %v, late %v, %d without parent; want all %d linked", linked, ambiguous, late, unlinked, 2*shared)
	}
}

// net/http over HTTP/2, both watched on one node: 12 identical requests at
// once through A, whose Transport multiplexes them as 12 streams on one
// connection to B, h2c and over TLS. Both probes read each request's
// stream id, so every B span joins exactly the trace of its request,
// under A's one call on its stream; none is ambiguous. Also with Go 1.27
// (HTTP/2 in net/http/internal/http2) and a stripped Go 1.24 (offsets from
// the tables, the *tls.Conn told by shape). Before Go 1.23 net/http's
// HTTP/2 client has no ClientConn.roundTrip to read its connection at.
func TestSameNodeLinkingExactH2(t *testing.T) {
	for _, mode := range []struct {
		name, flag, scheme string
		v                  harness.Variant
	}{
		{"h2c", "-h2c", "h2c", harness.Variant{}},
		{"tls", "-tls", "https", harness.Variant{}},
		{"h2c-go1.27.3", "-h2c", "h2c", harness.Variant{Go: "go1.27.3"}},
		{"tls-go1.24.13-stripped", "-tls", "https", harness.Variant{Go: "go1.24.13", Stripped: true}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			s := startSetupB(t, mode.v, true, []string{mode.flag})
			sleep := url.QueryEscape(mode.scheme + "://" + s.b.Addr + "/sleep?ms=50")
			// One call first, so that the 12 find A's connection open.
			warm := len(s.recv.Spans())
			getAll(t, s.a.Addr, 1, func(int) string { return "/chain?to=" + sleep })
			if _, err := s.recv.WaitFor(warm+3, 15*time.Second); err != nil {
				t.Fatalf("warm-up: %v\n%s", err, s.agent.Log())
			}
			const n = 12
			for round := range 2 {
				time.Sleep(1200 * time.Millisecond)
				before := len(s.recv.Spans())
				tids := getAll(t, s.a.Addr, n, func(int) string { return "/chain?to=" + sleep })
				if _, err := s.recv.WaitFor(before+3*n, 15*time.Second); err != nil {
					t.Fatalf("round %d: %v\n%s", round, err, s.agent.Log())
				}
				time.Sleep(1200 * time.Millisecond)
				got := s.recv.Spans()[before:]
				traces := byTrace(got)
				ports := map[string]bool{}
				for i, tid := range tids {
					aSrv, aCli, bSrv := services(traces[tid])
					if len(aSrv) != 1 || len(aCli) != 1 || len(bSrv) != 1 {
						t.Errorf("round %d #%d: trace %s has A server %d, A client %d, B server %d; want 1 each", round, i, tid, len(aSrv), len(aCli), len(bSrv))
						continue
					}
					c, b := aCli[0], bSrv[0]
					if c.ParentSpanID != aSrv[0].SpanID || b.ParentSpanID != c.SpanID || !onConn(b, c) {
						t.Errorf("round %d #%d: A client under %s (want %s), B under %s (want %s), on its connection %v",
							round, i, c.ParentSpanID, aSrv[0].SpanID, b.ParentSpanID, c.SpanID, onConn(b, c))
					}
					if b.Attrs["network.protocol.version"] != "2" {
						t.Errorf("round %d #%d: B served HTTP/%v, want 2", round, i, b.Attrs["network.protocol.version"])
					}
					ports[fmt.Sprint(c.Attrs["network.local.port"])] = true
				}
				if len(ports) != 1 {
					t.Errorf("round %d: A's calls on %d connections, want 1", round, len(ports))
				}
			}
			text, err := s.agent.Metrics()
			if err != nil {
				t.Fatal(err)
			}
			if v := scrapeValue(t, text, "golens_spans_linked_total"); v != 1+2*n {
				t.Errorf("golens_spans_linked_total %v, want %d", v, 1+2*n)
			}
			for _, r := range []string{"no_client_span", "lookup_busy", "ambiguous", "no_conn"} {
				if v := scrapeValue(t, text, `golens_spans_unlinked_total{reason="`+r+`"}`); v != 0 {
					t.Errorf("unlinked %s %v, want 0", r, v)
				}
			}
		})
	}
}
