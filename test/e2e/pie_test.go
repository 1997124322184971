package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/golens/golens/test/harness"
)

// What golens reads at a target's run-time addresses is found there, for
// a fixed-address executable and for a PIE (linked at 0x400000 too, loaded
// elsewhere). A refused connection gives the client span error.type
// *net.OpError (from the error's itab address), and the runtime globals
// read at GC pauses give a live heap and a goroutine count in range.
func TestRuntimeAddresses(t *testing.T) {
	for _, v := range []harness.Variant{{}, {PIE: true}} {
		t.Run(v.String(), func(t *testing.T) { testRuntimeAddresses(t, v) })
	}
}

func testRuntimeAddresses(t *testing.T, v harness.Variant) {
	s := startClientSetup(t, v)
	// A collection, then fan goroutines (the fan-out's), then two more
	// collections: 1 + 2 + (1 + fan) + 1 spans. The runtime hands goroutine
	// ids to each P 16 at a time, so the count read at the collections may
	// lag or lead the goroutines created by up to 16 per P: fan is enough
	// to show through that.
	procs := runtime.NumCPU()
	fan := 16*procs + 16
	s.get(t, "/gc?n=1", "", http.StatusOK)
	tid, pid := randHex(16), randHex(8)
	s.get(t, "/chain?to="+url.QueryEscape("http://127.0.0.1:1/x"), "00-"+tid+"-"+pid+"-01", http.StatusBadGateway)
	s.get(t, fmt.Sprintf("/fanout?n=%d&to=%s", fan, url.QueryEscape("http://"+s.b.Addr+"/echo/fan")), "", http.StatusOK)
	s.get(t, "/gc?n=2", "", http.StatusOK)
	spans, err := s.recv.WaitFor(5+fan, 10*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.agent.Log())
	}
	clients := kindOf(byTrace(spans)[tid], tracepb.Span_SPAN_KIND_CLIENT)
	if len(clients) != 1 {
		t.Fatalf("%d client spans in the trace, want 1: %+v", len(clients), spans)
	}
	if got := clients[0].Attrs["error.type"]; got != "*net.OpError" {
		t.Errorf("error.type %v, want *net.OpError", got)
	}
	text, err := s.agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if got := scrapeValue(t, text, `go_app_gc_cycles_total{service_name="svc-a"}`); got < 3 {
		t.Errorf("gc cycles %v, want >= 3", got)
	}
	// The test app's live heap is a few hundred KiB to a few MiB.
	if got := scrapeValue(t, text, `go_app_gc_heap_live_bytes{service_name="svc-a"}`); got < 64<<10 || got > 256<<20 {
		t.Errorf("heap live %v bytes, want between 64 KiB and 256 MiB", got)
	}
	// Goroutines created between the first and the last collection: the
	// fan-out's, and for each of its new connections net/http's dial, read
	// and write loops (4 × fan here), give or take a batch of ids per P;
	// far fewer than a stray read would give.
	lo, hi := float64(fan-16*procs), float64(4*fan+16*procs+100)
	got := scrapeValue(t, text, `go_app_goroutines_created_total{service_name="svc-a"}`)
	t.Logf("goroutines created: %v (fan-out %d, %d CPUs)", got, fan, procs)
	if got < lo || got > hi {
		t.Errorf("goroutines created %v, want between %v and %v", got, lo, hi)
	}
	if t.Failed() {
		t.Logf("agent log:\n%s\n%s", s.agent.Log(), grepLines(text, "go_app_g"))
	}
}
