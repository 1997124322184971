package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/golens/golens/test/harness"
)

// The README's cost claim, as a count rather than a timing: a request
// served costs its target exactly two probe hits, an RPC served exactly
// two, whatever the connection reuse, an HTTP/1.x client request three
// (its connection is read where the transport picked it) and an HTTP/2
// one four (and where its stream got its id, for same-node linking by
// connection and stream) — read from the
// kernel's own run counts of every program the agent holds. Only the
// runtime's GC programs (uprobe_stw_*) may run besides, when the target
// collects.
func TestProbeHitsPerRequest(t *testing.T) {
	httpBin := buildApp(t, "httpserver", harness.Variant{})
	grpcBin := buildApp(t, "grpcapp", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	web, err := harness.StartApp(httpBin, nil, "-h2c")
	if err != nil {
		t.Fatal(err)
	}
	defer web.Stop()
	grpcAddr, _ := harness.FreeAddr()
	rpc, err := harness.StartApp(grpcBin, nil, "-grpc-addr", grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer rpc.Stop()
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(web.PID()), "--pid", fmt.Sprint(rpc.PID()),
		"--otlp-endpoint", recv.Addr(), "--otlp-insecure")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	stats, err := harness.RunStats()
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()

	keepAlive := &http.Client{}
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// One call first, so the measurement does not count the gRPC
	// connection's set-up.
	if err := conn.Invoke(context.Background(), "/test.Echo/Ok", new(emptypb.Empty), new(emptypb.Empty)); err != nil {
		t.Fatal(err)
	}

	serve := map[string]int{"uprobe_server_": 2}
	for _, c := range []struct {
		name string
		n    int
		want map[string]int // hits per request of the programs that serve it, by kernel name prefix
		do   func() error
	}{
		{"HTTP/1.1 keep-alive", 300, serve, func() error { return httpGet(keepAlive, web.Addr) }},
		{"HTTP/1.1 a connection per request", 100, serve, func() error { return httpGet(fresh, web.Addr) }},
		// /chain served, its call to /hello sent and served.
		{"HTTP/1.1 client call", 100, map[string]int{"uprobe_server_": 4, "uprobe_client_": 3}, func() error {
			return chainGet(keepAlive, web.Addr, "http://"+web.Addr+"/hello")
		}},
		{"HTTP/2 (h2c) client call", 100, map[string]int{"uprobe_server_": 4, "uprobe_client_": 2, "uprobe_h2_clien": 1, "uprobe_h2_heade": 1}, func() error {
			return chainGet(keepAlive, web.Addr, "h2c://"+web.Addr+"/hello")
		}},
		{"gRPC unary", 300, map[string]int{"uprobe_grpc_ser": 2}, func() error {
			return conn.Invoke(context.Background(), "/test.Echo/Ok", new(emptypb.Empty), new(emptypb.Empty))
		}},
	} {
		before := runCounts(t, agent)
		for range c.n {
			if err := c.do(); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		after := runCounts(t, agent)
		served := make(map[string]uint64)
		var other uint64
		var others []string
	runs:
		for name, runs := range after {
			d := runs - before[name]
			if d == 0 || strings.HasPrefix(name, "uprobe_stw") {
				continue
			}
			for prefix := range c.want {
				if strings.HasPrefix(name, prefix) {
					served[prefix] += d
					continue runs
				}
			}
			other += d
			others = append(others, fmt.Sprintf("%s=%d", name, d))
		}
		sort.Strings(others)
		for prefix, per := range c.want {
			if served[prefix] != uint64(per*c.n) {
				t.Errorf("%s: %d requests ran %s* %d times, want exactly %d", c.name, c.n, prefix, served[prefix], per*c.n)
			}
		}
		if other != 0 {
			t.Errorf("%s: other programs ran %d times %v", c.name, other, others)
		}
	}
}

// chainGet has the target at addr call to (its /chain) and checks the status.
func chainGet(c *http.Client, addr, to string) error {
	resp, err := c.Get("http://" + addr + "/chain?to=" + url.QueryEscape(to))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func httpGet(c *http.Client, addr string) error {
	resp, err := c.Get("http://" + addr + "/hello")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func runCounts(t *testing.T, agent *harness.Agent) map[string]uint64 {
	t.Helper()
	c, err := harness.RunCounts(agent.Cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
