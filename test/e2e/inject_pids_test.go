package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/golens/golens/test/harness"
)

// The real agent with --inject-context=auto and discovery serves exactly
// its live targets on the wire: a target's pid is in the injector's pid
// map (read from the agent's own descriptors) while it is attached and
// gone once it exited, so a pid reused later is not injected for; without
// the flag the agent has no injector at all.
func TestInjectPidsFollowTargets(t *testing.T) {
	bin := buildApp(t, "httpserver", harness.Variant{})
	selected := filepath.Join(t.TempDir(), "httpserver")
	if err := copyExecutable(bin, selected); err != nil {
		t.Fatal(err)
	}
	agent, err := harness.StartAgent(agentBin, nil, "--exe", selected, "--inject-context=auto", "--exporter", "console")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, agent.Log())
	}
	if got := agentServed(t, agent.Cmd.Process.Pid); got == nil || len(got) != 0 {
		t.Fatalf("before any target: served %v, want an empty pid map", got)
	}
	app, err := harness.StartApp(selected, []string{"OTEL_SERVICE_NAME=selected"})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(agent.Log(), fmt.Sprintf("msg=attached pid=%d ", app.PID())); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("target %d not attached within 10 s\n%s", app.PID(), agent.Log())
		}
	}
	if got := agentServed(t, agent.Cmd.Process.Pid); !slices.Equal(got, []int{app.PID()}) {
		t.Fatalf("served %v, want the target %d", got, app.PID())
	}

	// Without the flag, on the same target: no injector.
	plain, err := harness.StartAgent(agentBin, nil, "--pid", fmt.Sprint(app.PID()), "--exporter", "console")
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, plain.Log())
	}
	if got := agentServed(t, plain.Cmd.Process.Pid); got != nil {
		t.Errorf("an agent without --inject-context serves %v", got)
	}
	plain.Stop(5 * time.Second)

	pid := app.PID()
	app.Cmd.Process.Kill()
	app.Cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := agentServed(t, agent.Cmd.Process.Pid)
		if got != nil && len(got) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after target %d exited the agent still serves %v (leak)\n%s", pid, got, agent.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agentServed returns the pids in the inject_pids map the agent process
// holds, nil when it holds none.
func agentServed(t *testing.T, agentPID int) []int {
	t.Helper()
	infos, err := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", agentPID))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	found := false
	for _, f := range infos {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var id uint64
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "map_id:"); ok {
				id, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			}
		}
		if id == 0 {
			continue
		}
		mp, err := ebpf.NewMapFromID(ebpf.MapID(id))
		if err != nil {
			continue
		}
		if info, err := mp.Info(); err == nil && info.Name == "inject_pids" {
			found = true
			var pid uint32
			var v uint8
			for it := mp.Iterate(); it.Next(&pid, &v); {
				pids = append(pids, int(pid))
			}
		}
		mp.Close()
	}
	if !found {
		return nil
	}
	slices.Sort(pids)
	return append([]int{}, pids...)
}
