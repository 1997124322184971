package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
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

// The last events of a target that exits are not lost: a target serves 50
// requests and exits 0.3 s later, while the reader is still waiting out its
// idle poll (the events are in the ring, not yet read, when the target is
// released). Exactly those 50 spans arrive, and nothing is counted as a
// decode error. Released through the manager's exit watcher (--pid) and
// through discovery's exit event (--exe).
func TestTargetExitKeepsLastEvents(t *testing.T) {
	bin := buildApp(t, "httpserver", harness.Variant{})
	for _, how := range []string{"pid", "exe"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			exe := filepath.Join(dir, "httpserver")
			if err := copyExecutable(bin, exe); err != nil {
				t.Fatal(err)
			}
			recv, err := harness.NewReceiver()
			if err != nil {
				t.Fatal(err)
			}
			defer recv.Close()
			args := []string{"--otlp-endpoint", recv.Addr(), "--otlp-insecure"}
			var app *harness.App
			var agent *harness.Agent
			if how == "pid" {
				if app, err = harness.StartApp(exe, []string{"OTEL_SERVICE_NAME=short"}); err != nil {
					t.Fatal(err)
				}
				defer app.Stop()
				agent, err = harness.StartAgent(agentBin, nil, append(args, "--pid", fmt.Sprint(app.PID()))...)
			} else {
				agent, err = harness.StartAgent(agentBin, nil, append(args, "--exe", exe)...)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer agent.Stop(5 * time.Second)
			if err := agent.WaitReady(20 * time.Second); err != nil {
				t.Fatal(err)
			}
			if how == "exe" {
				app, _, _ = startAndWaitAttached(t, agent, exe, "OTEL_SERVICE_NAME=short")
				defer app.Stop()
			}
			// Quiet long enough for the reader to back off to its
			// longest poll.
			time.Sleep(2 * time.Second)
			const n = 50
			for i := 0; i < n; i++ {
				get(t, app.Addr, fmt.Sprintf("/echo/last-%d", i))
			}
			time.Sleep(300 * time.Millisecond)
			app.Stop()

			spans, err := recv.WaitFor(n, 10*time.Second)
			if err != nil {
				t.Fatalf("%v\n%s", err, agent.Log())
			}
			// Nothing more is on its way: the batch timer has fired.
			time.Sleep(500 * time.Millisecond)
			spans = recv.Spans()
			seen := make(map[string]int)
			for _, s := range spans {
				seen[fmt.Sprint(s.Attrs["url.path"])]++
			}
			for i := 0; i < n; i++ {
				if p := fmt.Sprintf("/echo/last-%d", i); seen[p] != 1 {
					t.Errorf("%s: %d spans, want 1", p, seen[p])
				}
			}
			if len(spans) != n {
				t.Errorf("%d spans, want %d", len(spans), n)
			}
			text, err := agent.Metrics()
			if err != nil {
				t.Fatal(err)
			}
			if v := scrapeValue(t, text, "golens_events_decode_errors_total"); v != 0 {
				t.Errorf("golens_events_decode_errors_total %v, want 0", v)
			}
			if got := targets(t, agent); got != 0 {
				t.Errorf("golens_targets %d after the target exited, want 0", got)
			}
		})
	}
}
