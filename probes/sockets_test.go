package probes_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/probes/goruntime"
	"github.com/golens/golens/probes/inspect/inspecttest"
	"github.com/golens/golens/probes/nethttp"
)

// With the inject feature, the manager attaches the net/http socket
// programs once (sock_ops on the cgroup v2 root, sk_msg on its sockhash),
// serves exactly the pids of its live targets — a target that exited or
// was detached is no longer served — and takes the programs away on
// Close.
func TestSocketProgramsFollowTargets(t *testing.T) {
	needEBPF(t)
	exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, stop := runManager(t, []string{probes.FeatureInject})
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	if !m.Feature(probes.FeatureInject) {
		t.Fatal("inject feature off after a clean Open")
	}
	if n := ownProgs(t); n[ebpf.SockOps] != 1 || n[ebpf.SkMsg] != 1 {
		t.Errorf("socket programs loaded by this process %v, want one sock_ops and one sk_msg", n)
	}
	ids := ownProgIDs(t, ebpf.SockOps)
	if len(ids) != 1 {
		t.Fatalf("sock_ops ids %v, want one", ids)
	}
	if attached := cgroupSockOps(t); !slices.Contains(attached, ids[0]) {
		t.Errorf("sock_ops program %d not attached to the cgroup v2 root (attached: %v)", ids[0], attached)
	}

	a, b := startTarget(t, exe), startTarget(t, exe)
	for _, c := range []*exec.Cmd{a, b} {
		pid := c.Process.Pid
		if _, err := m.Attach(pid, &event.Process{PID: pid, ServiceName: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := served(t), sorted(a.Process.Pid, b.Process.Pid); !slices.Equal(got, want) {
		t.Fatalf("served %v, want the two targets %v", got, want)
	}
	if err := m.Detach(b.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if got, want := served(t), sorted(a.Process.Pid); !slices.Equal(got, want) {
		t.Errorf("after detaching %d: served %v, want %v", b.Process.Pid, got, want)
	}
	// A target that exits is released by the manager's own watcher.
	a.Process.Kill()
	a.Wait()
	select {
	case pid := <-m.Exited():
		if pid != a.Process.Pid {
			t.Fatalf("exited %d, want %d", pid, a.Process.Pid)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exit of the target not seen")
	}
	if got := served(t); len(got) != 0 {
		t.Errorf("after the target exited: served %v, want none (its pid leaked)", got)
	}
	s := m.Stats().Sockets
	if _, ok := s["injected_http1"]; !ok {
		t.Errorf("socket counters %v lack injected_http1", s)
	}
	stop()
	if n := ownProgs(t); n[ebpf.SockOps] != 0 || n[ebpf.SkMsg] != 0 {
		t.Errorf("socket programs still loaded after Close: %v", n)
	}
	if slices.Contains(cgroupSockOps(t), ids[0]) {
		t.Errorf("sock_ops program %d still attached after Close", ids[0])
	}
}

// Without the feature no socket program is loaded, nothing is served and
// no socket counter is reported.
func TestSocketProgramsOnlyWithFeature(t *testing.T) {
	needEBPF(t)
	exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := runManager(t, nil)
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	c := startTarget(t, exe)
	if _, err := m.Attach(c.Process.Pid, &event.Process{PID: c.Process.Pid, ServiceName: "t"}); err != nil {
		t.Fatal(err)
	}
	if m.Feature(probes.FeatureInject) {
		t.Error("inject feature on though not asked for")
	}
	if n := ownProgs(t); n[ebpf.SockOps] != 0 || n[ebpf.SkMsg] != 0 {
		t.Errorf("socket programs loaded without the feature: %v", n)
	}
	if ids := ownProgIDs(t, ebpf.SockOps); len(ids) != 0 {
		t.Errorf("sock_ops loaded without the feature: %v", ids)
	}
	if pids := served(t); pids != nil {
		t.Errorf("a pid map %v without the feature", pids)
	}
	if s := m.Stats(); s.Sockets != nil {
		t.Errorf("socket counters without the feature: %v", s.Sockets)
	}
}

// runManager runs a manager of the net/http and runtime probes with the
// features given; stop (also run at the test's end) stops and closes it.
func runManager(t *testing.T, features []string) (*probes.Manager, func()) {
	t.Helper()
	m := probes.NewManager([]probes.Spec{nethttp.Probe, goruntime.Probe}, features, func(event.Event) {}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	t.Cleanup(stop)
	return m, stop
}

func startTarget(t *testing.T, exe string) *exec.Cmd {
	t.Helper()
	c := exec.Command(exe, freeAddr(t))
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	return c
}

// served returns the pids in this process's own inject_pids map (nil when
// it holds none), read from the kernel, whatever the manager says.
func served(t *testing.T) []int {
	t.Helper()
	var pids []int
	found := false
	for _, f := range ownFDInfo(t) {
		id, ok := f["map_id"]
		if !ok {
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
	if pids == nil {
		pids = []int{}
	}
	return pids
}

func sorted(pids ...int) []int { slices.Sort(pids); return pids }

// ownFDInfo reads the numeric fields of every /proc/self/fdinfo entry.
func ownFDInfo(t *testing.T) []map[string]uint64 {
	t.Helper()
	fds, err := filepath.Glob("/proc/self/fdinfo/*")
	if err != nil {
		t.Fatal(err)
	}
	var infos []map[string]uint64
	for _, f := range fds {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue // closed meanwhile
		}
		info := make(map[string]uint64)
		for _, line := range strings.Split(string(raw), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
				info[k] = n
			}
		}
		infos = append(infos, info)
	}
	return infos
}

// ownProgs counts the BPF programs this process holds, by type, from its
// file descriptors, whatever the manager says.
func ownProgs(t *testing.T) map[ebpf.ProgramType]int {
	t.Helper()
	n := make(map[ebpf.ProgramType]int)
	for _, f := range ownFDInfo(t) {
		if pt, ok := f["prog_type"]; ok {
			n[ebpf.ProgramType(pt)]++
		}
	}
	return n
}

// ownProgIDs lists the ids of this process's programs of type pt.
func ownProgIDs(t *testing.T, pt ebpf.ProgramType) []ebpf.ProgramID {
	t.Helper()
	var ids []ebpf.ProgramID
	for _, f := range ownFDInfo(t) {
		if typ, ok := f["prog_type"]; ok && ebpf.ProgramType(typ) == pt {
			ids = append(ids, ebpf.ProgramID(f["prog_id"]))
		}
	}
	return ids
}

// cgroupSockOps lists the sock_ops programs attached to the cgroup v2
// root (other agents' too).
func cgroupSockOps(t *testing.T) []ebpf.ProgramID {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	root := ""
	for _, l := range strings.Split(string(raw), "\n") {
		pre, post, _ := strings.Cut(l, " - ")
		if f := strings.Fields(pre); len(f) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			root = f[4]
			break
		}
	}
	if root == "" {
		t.Fatal("no cgroup v2 hierarchy mounted")
	}
	f, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachCGroupSockOps})
	if err != nil {
		t.Fatal(err)
	}
	var ids []ebpf.ProgramID
	for _, p := range res.Programs {
		ids = append(ids, p.ID)
	}
	return ids
}

// Socket programs that cannot be started turn their feature off: Open
// says so with a FeatureError, and targets are attached (traced) without
// it.
func TestSocketProgramsFailTurnFeatureOff(t *testing.T) {
	needEBPF(t)
	exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	spec := nethttp.Probe
	sp := *spec.Sockets
	sp.Start = func(map[string]*ebpf.Map) (probes.Sockets, error) { return nil, errors.New("no socket objects here") }
	spec.Sockets = &sp
	m := probes.NewManager([]probes.Spec{spec, goruntime.Probe}, []string{probes.FeatureInject}, func(event.Event) {}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer m.Close()
	err = m.Open()
	var fe *probes.FeatureError
	if !errors.As(err, &fe) || fe.Feature != probes.FeatureInject || !strings.Contains(err.Error(), "no socket objects here") {
		t.Fatalf("Open = %v, want a FeatureError for %s", err, probes.FeatureInject)
	}
	if m.Feature(probes.FeatureInject) {
		t.Error("inject feature still on")
	}
	c := startTarget(t, exe)
	res, err := m.Attach(c.Process.Pid, &event.Process{PID: c.Process.Pid, ServiceName: "t"})
	if err != nil || !slices.Contains(res.Probes, "net/http") {
		t.Fatalf("attach without the feature: %+v, %v", res, err)
	}
	if pids := served(t); pids != nil {
		t.Errorf("a pid map (serving %v) with the feature off", pids)
	}
}
