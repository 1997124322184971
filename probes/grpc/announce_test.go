package grpc_test

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/probes/grpc"
	"github.com/golens/golens/test/harness"
)

// injectKey and injectIDs mirror inject.h's struct inject_key and struct
// inject_ids.
type injectKey struct {
	PID, Stream uint32
	LocalIP     [16]byte
	RemoteIP    [16]byte
	LocalPort   uint16
	RemotePort  uint16
	_           uint32
}

type injectIDs struct {
	TraceID  [16]byte
	SpanID   [8]byte
	Flags    uint8
	_        [3]byte
	LineHash uint32
}

func (k injectKey) conn() event.Conn {
	return probes.ConnTuple(k.LocalIP, k.RemoteIP, k.LocalPort, k.RemotePort)
}

// With --inject-context, sixteen concurrent identical unary calls over four
// connections are each announced exactly once, before their HEADERS frame,
// under their own stream id and connection, with their own client span's
// ids (nothing consumes the announcements here: no socket programs); a call
// whose application set "traceparent" metadata itself is not announced,
// and counted. The announcement costs one probe hit per call.
func TestAnnounce(t *testing.T) {
	forVersions(t, testAnnounce)
}

func testAnnounce(t *testing.T, bin string) {
	var got collector
	m := startManager(t, got.handle, probes.FeatureInject)
	a, bGRPC := startPair(t, bin, m)
	stats, err := harness.RunStats()
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	fanout(t, a, bGRPC, []string{"Missing@0", "Missing@1", "Missing@2", "Missing@3"}, "")
	if c, s := got.wait("/test.Echo/Missing", 4, 10*time.Second); len(c) != 4 || len(s) != 4 {
		t.Fatalf("warm-up: %d client and %d server events, want 4 each", len(c), len(s))
	}
	before, err := grpc.AnnounceCounts(m)
	if err != nil {
		t.Fatal(err)
	}
	runsBefore, err := harness.RunCounts(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}

	var calls []string
	for i := range 16 {
		calls = append(calls, fmt.Sprintf("Ok@%d", i%4))
	}
	// The application's own traceparent: continued by the server, not
	// announced.
	appTrace := "0af7651916cd43dd8448eb211c80319c"
	calls = append(calls, "Fail@1+tp")
	if body, want := fanout(t, a, bGRPC, calls, "00-"+appTrace+"-b7ad6b7169203331-01"), strings.Repeat("OK,", 16)+"Internal"; body != want {
		t.Fatalf("A answered %q, want %q", body, want)
	}
	clients, servers := got.wait("/test.Echo/Ok", 16, 10*time.Second)
	if len(clients) != 16 || len(servers) != 16 {
		t.Fatalf("%d client and %d server events, want 16 each", len(clients), len(servers))
	}
	failed, _ := got.wait("/test.Echo/Fail", 1, 10*time.Second)
	if len(failed) != 1 {
		t.Fatalf("%d client events of the call with its own traceparent, want 1", len(failed))
	}

	pending, err := m.Shared("inject_pending")
	if err != nil || pending == nil {
		t.Fatalf("inject_pending: %v %v", pending, err)
	}
	type ann struct {
		key injectKey
		ids injectIDs
	}
	bySpan := map[event.SpanID][]ann{}
	var k injectKey
	var v injectIDs
	for it := pending.Iterate(); it.Next(&k, &v); {
		if int(k.PID) == a.PID() {
			bySpan[v.SpanID] = append(bySpan[v.SpanID], ann{k, v})
		}
	}
	listener := netip.MustParseAddrPort(bGRPC)
	streams := map[event.Conn]map[uint32]bool{}
	for _, c := range clients {
		as := bySpan[c.SpanID]
		if len(as) != 1 {
			t.Errorf("client span %x: %d announcements, want 1", c.SpanID, len(as))
			continue
		}
		an := as[0]
		if an.ids.TraceID != c.TraceID || an.ids.Flags != c.Flags || an.ids.LineHash != 0 {
			t.Errorf("client span %x: announced trace %x flags %d line hash %d, want trace %x flags %d and no line hash",
				c.SpanID, an.ids.TraceID, an.ids.Flags, an.ids.LineHash, c.TraceID, c.Flags)
		}
		if an.key.conn() != c.Conn || c.Conn.Remote != listener {
			t.Errorf("client span %x: announced on %v, the event says %v (server %v)", c.SpanID, an.key.conn(), c.Conn, listener)
		}
		if an.key.Stream%2 != 1 {
			t.Errorf("client span %x: stream id %d is not a client stream's", c.SpanID, an.key.Stream)
		}
		if streams[c.Conn] == nil {
			streams[c.Conn] = map[uint32]bool{}
		}
		if streams[c.Conn][an.key.Stream] {
			t.Errorf("stream %d announced twice on %v", an.key.Stream, c.Conn)
		}
		streams[c.Conn][an.key.Stream] = true
	}
	if len(streams) != 4 {
		t.Errorf("calls announced on %d connections, want 4", len(streams))
	}
	if as := bySpan[failed[0].SpanID]; len(as) != 0 {
		t.Errorf("the call with its own traceparent was announced: %+v", as)
	}

	after, err := grpc.AnnounceCounts(m)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint64{"announced": 16, "app_traceparent": 1, "no_call": 0, "not_tcp": 0, "unchecked": 0} {
		if n := after[name] - before[name]; n != want {
			t.Errorf("%s: %d, want %d", name, n, want)
		}
	}
	runs, err := harness.RunCounts(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	hits := runs["uprobe_grpc_announce"] - runsBefore["uprobe_grpc_announce"] +
		runs["uprobe_grpc_announce_orig"] - runsBefore["uprobe_grpc_announce_orig"]
	if hits != 17 {
		t.Errorf("the announcing program ran %d times for 17 calls, want 17", hits)
	}
	logRunTime(t, "uprobe_grpc_announce", "uprobe_grpc_announce_orig", "uprobe_grpc_client_entry", "uprobe_grpc_client_finish")
}

// logRunTime logs the mean run time of the named programs this process
// holds (the kernel's run statistics, on while RunStats is).
func logRunTime(t *testing.T, names ...string) {
	ids, err := harness.ProgramIDs(os.Getpid())
	if err != nil {
		t.Log(err)
		return
	}
	runs, ns := map[string]uint64{}, map[string]time.Duration{}
	for _, id := range ids {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err1 := p.Info()
		st, err2 := p.Stats()
		p.Close()
		if err1 != nil || err2 != nil {
			continue
		}
		runs[info.Name] += st.RunCount
		ns[info.Name] += st.Runtime
	}
	for _, n := range names {
		if runs[n] > 0 {
			t.Logf("%s: %d runs, %v each in the program", n, runs[n], ns[n]/time.Duration(runs[n]))
		}
	}
}
