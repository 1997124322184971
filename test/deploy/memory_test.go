package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/golens/golens/test/harness"
	"github.com/golens/golens/test/k8s"
)

// memoryHeadroom is how far above the agent's measured peak the limits sit:
// targets with more symbols than kube-apiserver, more routes and label sets
// than this test makes, and the Go GC's own slack.
const memoryHeadroom = 2

// TestAgentMemory measures the agent's peak resident memory (VmHWM)
// attaching to a large real Go binary, kube-apiserver (k8s.Start's, with
// its symbols and DWARF), and serving its traffic, and holds the memory
// settings of the systemd unit, the DaemonSet and the chart to it: the
// request at least the peak, MemoryHigh and the limit at least
// memoryHeadroom times it, MemoryMax above MemoryHigh.
func TestAgentMemory(t *testing.T) {
	if why := harness.EBPFUnavailable(); why != "" {
		unavailable(t, "eBPF unavailable: %s", why)
	}
	cl, err := k8s.Start(t.TempDir())
	if err != nil {
		unavailable(t, "no kube-apiserver: %v", err)
	}
	defer cl.Stop()
	kas := cl.APIServerPID()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", kas))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(exe)
	if err != nil {
		t.Fatal(err)
	}

	agent, err := harness.StartAgent(buildAgent(t, t.TempDir()), nil, "--pid", strconv.Itoa(kas), "--exporter", "console")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	attached := vmHWM(t, agent.Cmd.Process.Pid)
	// Traffic: every request a span and a label set.
	const requests = 500
	for i := range requests {
		if err := cl.Do("GET", fmt.Sprintf("/api/v1/namespaces/ns-%d/pods", i), nil, nil); err != nil && !strings.Contains(err.Error(), "404") {
			t.Logf("request %d: %v", i, err)
		}
	}
	for range 5 {
		if _, err := agent.Metrics(); err != nil {
			t.Fatal(err)
		}
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	served := sample(text, `go_app_http_server_requests_total`)
	if served == "" {
		t.Fatalf("no request of kube-apiserver's counted: the agent was not measured at work\n%s", agent.Log())
	}
	peak := vmHWM(t, agent.Cmd.Process.Pid)
	t.Logf("golens attached to kube-apiserver %s (%d MiB binary): VmHWM %d MiB once attached, %d MiB after %d requests",
		k8s.KubeVersion, fi.Size()>>20, attached>>20, peak>>20, requests)

	// The systemd unit.
	u := parseUnit(t, filepath.Join(repoRoot(t), "deploy/systemd/golens.service"))
	high, max := systemdBytes(t, u.one(t, "MemoryHigh")), systemdBytes(t, u.one(t, "MemoryMax"))
	if high < memoryHeadroom*peak || max <= high {
		t.Errorf("golens.service MemoryHigh %d MiB, MemoryMax %d MiB: want MemoryHigh ≥ %d × the peak (%d MiB) and MemoryMax above it",
			high>>20, max>>20, memoryHeadroom, peak>>20)
	}
	goLimit := u["Service"]["Environment"]
	var soft int64
	for _, e := range goLimit {
		if v, ok := strings.CutPrefix(e, "GOMEMLIMIT="); ok {
			soft = goBytes(t, v)
		}
	}
	if soft < peak || soft >= high {
		t.Errorf("golens.service GOMEMLIMIT %d MiB: want between the peak (%d MiB) and MemoryHigh (%d MiB)", soft>>20, peak>>20, high>>20)
	}

	// The DaemonSet and the chart's defaults.
	var ds daemonSet
	p := filepath.Join(repoRoot(t), "deploy/kubernetes/daemonset.yaml")
	find(t, parseObjects(t, p, []byte(readFile(t, p))), "DaemonSet").decode(t, &ds)
	res := ds.Spec.Template.Spec.Containers[0].Resources
	var values struct {
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(repoRoot(t), "deploy/helm/golens/values.yaml"))), &values); err != nil {
		t.Fatal(err)
	}
	for what, r := range map[string][2]string{
		"deploy/kubernetes": {res.Requests["memory"], res.Limits["memory"]},
		"chart values":      {values.Resources.Requests["memory"], values.Resources.Limits["memory"]},
	} {
		req, lim := kubeBytes(t, r[0]), kubeBytes(t, r[1])
		if req < peak || lim < memoryHeadroom*peak {
			t.Errorf("%s: memory request %s, limit %s: want the request ≥ the peak (%d MiB), the limit ≥ %d × it",
				what, r[0], r[1], peak>>20, memoryHeadroom)
		}
	}
}

// vmHWM is a process's peak resident set, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	for _, line := range strings.Split(readFile(t, fmt.Sprintf("/proc/%d/status", pid)), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM for pid %d", pid)
	return 0
}

// size parses a number with a suffix from units (each a power of 1024).
func size(t *testing.T, s string, units map[string]int) int64 {
	t.Helper()
	for suf, shift := range units {
		if n, ok := strings.CutSuffix(s, suf); ok && suf != "" {
			v, err := strconv.ParseInt(n, 10, 64)
			if err == nil {
				return v << shift
			}
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("size %q: want a number with one of %v", s, units)
	}
	return v
}

func systemdBytes(t *testing.T, s string) int64 {
	return size(t, s, map[string]int{"K": 10, "M": 20, "G": 30})
}

func kubeBytes(t *testing.T, s string) int64 {
	return size(t, s, map[string]int{"Ki": 10, "Mi": 20, "Gi": 30})
}

func goBytes(t *testing.T, s string) int64 {
	return size(t, s, map[string]int{"KiB": 10, "MiB": 20, "GiB": 30})
}
