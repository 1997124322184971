package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// A --pid that cannot be instrumented is the only target: exit 64 with one
// line naming the reason.
func TestBadPID(t *testing.T) {
	// A pid that existed and is gone.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	notGo := exec.Command("sleep", "60")
	if err := notGo.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { notGo.Process.Kill(); notGo.Wait() }()

	for _, tc := range []struct {
		name, pid, want string
	}{
		{"no such process", fmt.Sprint(gone.Process.Pid), "no such process"},
		{"not a Go program", fmt.Sprint(notGo.Process.Pid), "not a Go program"},
		{"not a number", "abc", "invalid argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agent, err := harness.StartAgent(agentBin, nil, "--pid", tc.pid)
			if err != nil {
				t.Fatal(err)
			}
			code, err := agent.Wait(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if code != 64 {
				t.Errorf("exit code %d, want 64 (EX_USAGE)\n%s", code, agent.Log())
			}
			if !strings.Contains(agent.Log(), tc.want) {
				t.Errorf("log does not say %q:\n%s", tc.want, agent.Log())
			}
			if n := strings.Count(strings.TrimSpace(agent.Log()), "\n"); n > 1 {
				t.Errorf("want a one-line error, got %d lines:\n%s", n+1, agent.Log())
			}
		})
	}
}

var targetsRe = regexp.MustCompile(`(?m)^golens_targets (\d+)$`)

// A target that exits is released; the agent keeps serving the others.
func TestTargetExit(t *testing.T) {
	bin := buildApp(t, "httpserver", harness.Variant{})
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	a1, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=first"})
	if err != nil {
		t.Fatal(err)
	}
	defer a1.Stop()
	a2, err := harness.StartApp(bin, []string{"OTEL_SERVICE_NAME=second"})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Stop()
	agent, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(a1.PID()), "--pid", fmt.Sprint(a2.PID()),
		"--otlp-endpoint", recv.Addr(), "--otlp-insecure")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := targets(t, agent); got != 2 {
		t.Fatalf("golens_targets %d, want 2", got)
	}

	a1.Stop()
	// Released, and said so (the line follows the release by a moment).
	deadline := time.Now().Add(3 * time.Second)
	for targets(t, agent) != 1 || !strings.Contains(agent.Log(), "target exited") {
		if time.Now().After(deadline) {
			t.Fatalf("exited target not released, with its log line, within 3s\n%s", agent.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}

	resp, err := http.Get("http://" + a2.Addr + "/echo/after-exit")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	spans, err := recv.WaitFor(1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 1 || spans[0].Attrs["url.path"] != "/echo/after-exit" || spans[0].Resource["service.name"] != "second" {
		t.Errorf("spans after the first target exited: %+v", spans)
	}
}

func targets(t *testing.T, a *harness.Agent) int {
	t.Helper()
	text, err := a.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	m := targetsRe.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no golens_targets in metrics:\n%s", text)
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}
