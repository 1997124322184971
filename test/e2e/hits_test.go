package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
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
// two, whatever the connection reuse — read from the kernel's own run
// counts of every program the agent holds. Only the runtime's GC programs
// (uprobe_stw_*) may run besides, when the target collects.
func TestProbeHitsPerRequest(t *testing.T) {
	httpBin := buildApp(t, "httpserver", harness.Variant{})
	grpcBin := buildApp(t, "grpcapp", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	web, err := harness.StartApp(httpBin, nil)
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

	for _, c := range []struct {
		name  string
		n     int
		group string // the programs that serve it, by kernel name prefix
		do    func() error
	}{
		{"HTTP/1.1 keep-alive", 300, "uprobe_server_", func() error { return httpGet(keepAlive, web.Addr) }},
		{"HTTP/1.1 a connection per request", 100, "uprobe_server_", func() error { return httpGet(fresh, web.Addr) }},
		{"gRPC unary", 300, "uprobe_grpc_ser", func() error {
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
		var served, other uint64
		var others []string
		for name, runs := range after {
			d := runs - before[name]
			switch {
			case d == 0 || strings.HasPrefix(name, "uprobe_stw"):
			case strings.HasPrefix(name, c.group):
				served += d
			default:
				other += d
				others = append(others, fmt.Sprintf("%s=%d", name, d))
			}
		}
		sort.Strings(others)
		if served != uint64(2*c.n) || other != 0 {
			t.Errorf("%s: %d requests ran %s* %d times (want exactly %d) and other programs %d times %v",
				c.name, c.n, c.group, served, 2*c.n, other, others)
		}
	}
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
