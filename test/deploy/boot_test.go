package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// bootScript starts systemd as PID 1 of new PID, mount, UTS and cgroup
// namespaces, on a throwaway root: an overlay of / whose writes go to a
// tmpfs, so that nothing systemd or its units do there reaches the host's
// files (an earlier, unprotected try let systemd-tmpfiles empty the host's
// /tmp). /sys is read-only but for the cgroup subtrees made for this run,
// and only the units the test names are started (DefaultDependencies=no),
// so no host-wide setting (sysctl, modules, binfmt) is touched.
//
// Inputs (environment): W (work dir), REPO, AGENT, APP, METRICS_ADDR,
// APP_ADDR, CGROUP_MOUNTS (cgroup mount points), CGROUP_SUB (the subtree
// under each, made by the test).
const bootScript = `
set -eu
for mp in $CGROUP_MOUNTS; do echo $$ > "$mp/$CGROUP_SUB/cgroup.procs"; done
exec unshare --pid --mount --uts --cgroup --propagation private --kill-child -- bash -eu -c '
R=$W/root O=$W/ovl
mkdir -p $R $O $W/out
mount -t tmpfs -o mode=0755 tmpfs $O
mkdir $O/upper $O/work
mount -t overlay overlay -o lowerdir=/,upperdir=$O/upper,workdir=$O/work $R
mount -t proc proc $R/proc
mount --rbind /dev $R/dev
mount --rbind /sys $R/sys
mount -o remount,bind,ro $R/sys
for mp in $CGROUP_MOUNTS; do mount --bind "$mp/$CGROUP_SUB" "$R$mp"; done
mount -t tmpfs tmpfs $R/run
mount -t tmpfs tmpfs $R/tmp
mkdir -p $R/var/log/golens-test
mount --bind $W/out $R/var/log/golens-test
# systemd logs to /dev/console: not to the host'"'"'s.
mount --bind /dev/null $R/dev/console

# golens as make install puts it, then the test'"'"'s settings.
cd $REPO && DESTDIR=$R BINARY=$AGENT ./scripts/install.sh >/dev/null
cat > $R/etc/golens/config.yaml <<EOF
discover:
  enabled: true
  systemd_unit: ["pay-*"]
exporter: console
metrics_addr: $METRICS_ADDR
EOF
cat > $R/etc/golens/golens.env <<EOF
OTEL_EXPORTER_OTLP_ENDPOINT=
GOLENS_ARGS=--log-format json --service-name from-env-file
EOF
S=$R/etc/systemd/system
mkdir -p $S/golens.service.d
cat > $S/golens.service.d/boot-test.conf <<EOF
[Unit]
# The default dependencies, but for sysinit.target and basic.target.
DefaultDependencies=no
Conflicts=shutdown.target
Before=shutdown.target
After=pay-demo.service
[Service]
StandardOutput=append:/var/log/golens-test/golens.log
StandardError=append:/var/log/golens-test/golens.log
# "+": outside the sandbox, which makes /var/log read-only.
ExecStopPost=+/bin/sh -c "echo \$SERVICE_RESULT \$EXIT_CODE \$EXIT_STATUS > /var/log/golens-test/golens.exit"
EOF
install -D -m 0755 $APP $R/opt/pay/pay-demo
cat > $S/pay-demo.service <<EOF
[Unit]
DefaultDependencies=no
[Service]
Type=exec
Environment=GODEBUG=httpmuxgo121=0 OTEL_SERVICE_NAME=pay-demo
ExecStart=/opt/pay/pay-demo -addr $APP_ADDR
StandardOutput=append:/var/log/golens-test/pay-demo.log
StandardError=inherit
EOF
cat > $S/golens-boot-test.target <<EOF
[Unit]
DefaultDependencies=no
Wants=pay-demo.service golens.service
EOF
ln -sf /dev/null $S/network-online.target
exec chroot $R /usr/bin/env container=golens-boot-test /lib/systemd/systemd --system --unit=golens-boot-test.target --log-target=console --log-level=info --show-status=no
'
`

// TestSystemdBoot runs the installed unit under a real systemd (PID 1 in its
// own namespaces, on a throwaway root): with every sandboxing option, the
// capability set and the system call filter in force, golens must start,
// read its environment file and config, select the Go service by its unit
// name (pay-*), attach its probes, answer /readyz, and on shutdown stop
// cleanly. Spans are not checked here: in a child PID namespace the probes'
// process ids (the kernel's initial namespace) do not match the agent's view;
// TestLeastCapabilities checks spans with the same capabilities.
func TestSystemdBoot(t *testing.T) {
	if why := harness.EBPFUnavailable(); why != "" {
		unavailable(t, "eBPF unavailable: %s", why)
	}
	for _, p := range []string{"/lib/systemd/systemd", "/usr/bin/unshare", "/usr/sbin/chroot"} {
		if _, err := os.Stat(p); err != nil {
			unavailable(t, "%s missing: %v", p, err)
		}
	}
	mounts := cgroupMounts(t)
	if len(mounts) == 0 {
		unavailable(t, "no cgroup hierarchy systemd can run in (name=systemd v1 or v2)")
	}

	work, err := os.MkdirTemp("", "golens-boot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	agent := buildAgent(t, work)
	app, err := harness.BuildApp("httpserver", harness.Variant{}, work)
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := must(t, harness.FreeAddr)
	appAddr := must(t, harness.FreeAddr)

	sub := fmt.Sprintf("golens-boot-test-%d", os.Getpid())
	for _, mp := range mounts {
		if err := os.Mkdir(filepath.Join(mp, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Cgroups are removed leaves first, once every process in them is gone.
	t.Cleanup(func() {
		for _, mp := range mounts {
			removeCgroup(t, filepath.Join(mp, sub))
		}
	})

	cmd := exec.Command("bash", "-c", bootScript)
	cmd.Env = append(os.Environ(), "W="+work, "REPO="+repoRoot(t), "AGENT="+agent, "APP="+app,
		"METRICS_ADDR="+metricsAddr, "APP_ADDR="+appAddr, "CGROUP_MOUNTS="+strings.Join(mounts, " "), "CGROUP_SUB="+sub)
	var console bytes.Buffer
	cmd.Stdout, cmd.Stderr = &console, &console
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill() // unshare --kill-child takes systemd and its units with it
			<-exited
		}
		if t.Failed() {
			t.Logf("boot script:\n%s", console.String())
			for _, f := range []string{"golens.log", "golens.exit", "pay-demo.log"} {
				b, _ := os.ReadFile(filepath.Join(work, "out", f))
				t.Logf("%s:\n%s", f, b)
			}
		}
	}()

	// Ready: the pay-* service found in the initial scan and attached.
	ready := false
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && !ready; time.Sleep(100 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("systemd exited early")
		default:
		}
		if resp, err := http.Get("http://" + metricsAddr + "/readyz"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
		if b, _ := os.ReadFile(filepath.Join(work, "out", "golens.log")); bytes.Contains(b, []byte(`"level":"ERROR"`)) {
			t.Fatal("golens.service logged an error")
		}
	}
	if !ready {
		t.Fatal("golens.service never answered /readyz")
	}
	log := readFile(t, filepath.Join(work, "out", "golens.log"))
	attached := findLine(log, `"msg":"attached"`, `"selected_by":"systemd_unit=pay-`)
	if attached == "" {
		t.Fatalf("golens.service did not attach to pay-demo.service:\n%s", log)
	}
	t.Logf("under systemd: %s", attached)
	if !strings.Contains(attached, `"service":"from-env-file"`) {
		t.Errorf("GOLENS_ARGS from the environment file did not reach golens (--log-format json --service-name from-env-file)")
	}
	metrics := getText("http://" + metricsAddr + "/metrics")
	if line := sample(metrics, "golens_targets"); !strings.HasSuffix(line, " 1") {
		t.Errorf("golens_targets: %q, want 1", line)
	}

	// What systemd set up for the process, as the kernel reports it.
	status := processStatus(t, sub, "golens")
	for k, want := range map[string]string{
		"CapEff":     "000000c000081004", // BPF, PERFMON, SYS_PTRACE, NET_ADMIN, DAC_READ_SEARCH
		"CapBnd":     "000000c000081004",
		"CapAmb":     "000000c000081004",
		"NoNewPrivs": "1",
		"Seccomp":    "2", // a filter: SystemCallFilter
	} {
		if status[k] != want {
			t.Errorf("golens.service %s = %q, want %q", k, status[k], want)
		}
	}

	// The unit's restart and memory settings, as this systemd took them.
	pid1 := childOf(t, cmd.Process.Pid)
	u := parseUnit(t, filepath.Join(repoRoot(t), "deploy/systemd/golens.service"))
	show := map[string]string{}
	for _, line := range strings.Split(systemctl(t, pid1, "show", "golens.service",
		"-p", "Restart,RestartUSec,RestartPreventExitStatus,StartLimitBurst,StartLimitIntervalUSec,MemoryHigh,MemoryMax,Environment"), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			show[k] = v
		}
	}
	for k, want := range map[string]string{
		"Restart":                  "on-failure",
		"RestartUSec":              u.one(t, "RestartSec"),
		"RestartPreventExitStatus": "64 69",
		"StartLimitBurst":          strings.Join(u["Unit"]["StartLimitBurst"], " "),
		"StartLimitIntervalUSec":   strings.Join(u["Unit"]["StartLimitIntervalSec"], " "),
		"MemoryHigh":               strconv.FormatInt(systemdBytes(t, u.one(t, "MemoryHigh")), 10),
		"MemoryMax":                strconv.FormatInt(systemdBytes(t, u.one(t, "MemoryMax")), 10),
		"Environment":              u.one(t, "Environment"),
	} {
		if show[k] != want {
			t.Errorf("systemctl show golens.service: %s=%q, want %q", k, show[k], want)
		}
	}

	// A crash is restarted: SIGQUIT makes the Go runtime dump its
	// goroutines and exit 2, as a fatal error does.
	systemctl(t, pid1, "kill", "--signal=SIGQUIT", "golens.service")
	exit := ""
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && exit != "exit-code exited 2"; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(work, "out", "golens.exit"))
		exit = strings.TrimSpace(string(b))
	}
	if exit != "exit-code exited 2" {
		t.Fatalf("after SIGQUIT golens.service stopped with %q, want \"exit-code exited 2\"", exit)
	}
	crashed := time.Now()
	ready = false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !ready; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + metricsAddr + "/readyz"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
	}
	restarts := strings.TrimSpace(systemctl(t, pid1, "show", "golens.service", "-p", "NRestarts", "--value"))
	if !ready || restarts != "1" {
		t.Fatalf("golens.service not back after a crash: ready %v, NRestarts %q", ready, restarts)
	}
	t.Logf("crashed (exit 2), restarted and ready again %s later", time.Since(crashed).Round(100*time.Millisecond))

	// Power off: systemd stops golens with SIGTERM and waits for it.
	if err := syscall.Kill(pid1, syscall.Signal(38)); err != nil { // SIGRTMIN+4: poweroff
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("systemd did not power off within 60 s")
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(work, "out", "golens.exit"))); got != "success exited 0" {
		t.Errorf("golens.service stopped with %q, want \"success exited 0\"", got)
	}
}

// systemctl runs systemctl against the test's systemd (pid1, as the host
// numbers it): in its mount and PID namespaces and under its root.
func systemctl(t *testing.T, pid1 int, args ...string) string {
	t.Helper()
	return run(t, "", nil, "nsenter", append([]string{"-t", strconv.Itoa(pid1), "-m", "-p", "-r", "-w", "systemctl", "--no-pager"}, args...)...)
}

// processStatus returns /proc/PID/status of the process named comm in the
// cgroup subtree sub.
func processStatus(t *testing.T, sub, comm string) map[string]string {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if c, _ := os.ReadFile(d + "/comm"); strings.TrimSpace(string(c)) != comm {
			continue
		}
		if cg, _ := os.ReadFile(d + "/cgroup"); !strings.Contains(string(cg), "/"+sub+"/") {
			continue
		}
		st := map[string]string{}
		for _, line := range strings.Split(readFile(t, d+"/status"), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				st[k] = strings.TrimSpace(v)
			}
		}
		return st
	}
	t.Fatalf("no %s process in cgroup %s", comm, sub)
	return nil
}

// sample returns the first sample line of metric name in a Prometheus text
// exposition.
func sample(text, name string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			return line
		}
	}
	return ""
}

// cgroupMounts returns the cgroup hierarchies systemd uses here: the named
// v1 "systemd" hierarchy and the v2 one, whichever are mounted.
func cgroupMounts(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, fs := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(fs) < 3 {
			continue
		}
		if fs[0] == "cgroup2" || (fs[0] == "cgroup" && strings.Contains(fs[2], "name=systemd")) {
			mps = append(mps, fields[4])
		}
	}
	return mps
}

// removeCgroup removes a cgroup directory and those under it.
func removeCgroup(t *testing.T, dir string) {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		for try := 0; try < 50; try++ {
			if err := syscall.Rmdir(dirs[i]); err == nil || os.IsNotExist(err) {
				break
			}
			time.Sleep(100 * time.Millisecond) // processes still exiting
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("could not remove cgroup %s", dir)
	}
}

// childOf returns the one child of pid (unshare's: systemd).
func childOf(t *testing.T, pid int) int {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if f := strings.Fields(string(b)); len(f) == 1 {
			n, err := strconv.Atoi(f[0])
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("no single child of pid %d", pid)
	return 0
}

// must returns f's value, failing the test on its error.
func must[T any](t *testing.T, f func() (T, error)) T {
	t.Helper()
	v, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return v
}
