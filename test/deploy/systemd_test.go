package deploy

import (
	"bufio"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// agentCaps are the capabilities golens needs, and all it gets.
var agentCaps = []string{"CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH", "CAP_NET_ADMIN"}

// unitFile is a systemd unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: cannot parse %q", path, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// one returns the single value of key in [Service].
func (u unitFile) one(t *testing.T, key string) string {
	t.Helper()
	vs := u["Service"][key]
	if len(vs) != 1 {
		t.Fatalf("[Service] %s: want one value, have %q", key, vs)
	}
	return vs[0]
}

// installInto runs scripts/install.sh with env (PREFIX, DESTDIR, ...).
func installInto(t *testing.T, env ...string) string {
	t.Helper()
	return run(t, repoRoot(t), env, "./scripts/install.sh")
}

// TestSystemdUnit checks the unit with systemd's own verifier and security
// analysis, and holds it to its promises: only the five capabilities, the
// sandboxing options, the command line.
func TestSystemdUnit(t *testing.T) {
	analyze := aptTool(t, "systemd-analyze", "systemd")
	// Installed for real (no DESTDIR) under a temporary prefix, so that the
	// verifier finds the binary the unit names.
	dir := t.TempDir()
	agent := buildAgent(t, t.TempDir())
	installInto(t, "PREFIX="+dir+"/usr", "SYSCONFDIR="+dir+"/etc", "BINARY="+agent)
	unit := filepath.Join(dir, "usr/lib/systemd/system/golens.service")

	// verify exits 0 even for a value it ignores; it must say nothing.
	if out := run(t, "", nil, analyze, "verify", unit); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify %s:\n%s", unit, out)
	}

	out := run(t, "", nil, analyze, "security", "--offline=yes", "--no-pager", unit)
	m := regexp.MustCompile(`Overall exposure level for golens.service: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: no exposure level in\n%s", out)
	}
	// 10 is an unsandboxed root service; with capabilities it cannot drop
	// (ptrace, BPF, DAC_READ_SEARCH, the network) golens scores 3.2 here.
	if exp, _ := strconv.ParseFloat(m[1], 64); exp > 4.0 {
		t.Errorf("exposure level %s, want at most 4.0:\n%s", m[1], out)
	}
	t.Logf("systemd-analyze security: exposure %s", m[1])

	u := parseUnit(t, unit)
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		got := strings.Fields(u.one(t, key))
		if !sameSet(got, agentCaps) {
			t.Errorf("%s = %q, want exactly %q", key, got, agentCaps)
		}
	}
	// Every capability is explained in the unit's comments.
	src := readFile(t, filepath.Join(repoRoot(t), "deploy/systemd/golens.service"))
	for _, c := range agentCaps {
		if !regexp.MustCompile(`(?m)^#\s+` + c + `\s+\S`).MatchString(src) {
			t.Errorf("no comment line starting with %s says why golens needs it", c)
		}
	}
	want := map[string]string{
		"Type":                     "simple",
		"Restart":                  "on-failure",
		"RestartPreventExitStatus": "64 69",
		"RestartSec":               "5s",
		"NoNewPrivileges":          "yes",
		"ProtectSystem":            "strict",
		"ProtectHome":              "read-only",
		"PrivateTmp":               "yes",
		"ProtectKernelModules":     "yes",
		"LockPersonality":          "yes",
		"MemoryDenyWriteExecute":   "yes",
		"SystemCallArchitectures":  "native",
		"EnvironmentFile":          "-" + dir + "/etc/golens/golens.env",
		"ExecStart":                dir + "/usr/bin/golens --config " + dir + "/etc/golens/config.yaml $GOLENS_ARGS",
	}
	for k, v := range want {
		if got := u.one(t, k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if got := strings.Fields(u.one(t, "RestrictAddressFamilies")); !sameSet(got, []string{"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}) {
		t.Errorf("RestrictAddressFamilies = %q", got)
	}
	// Crash loops end: at most StartLimitBurst starts in the interval.
	if b, i := u["Unit"]["StartLimitBurst"], u["Unit"]["StartLimitIntervalSec"]; len(b) != 1 || len(i) != 1 {
		t.Errorf("[Unit] StartLimitBurst %q, StartLimitIntervalSec %q: want one of each", b, i)
	}
	if user := u["Service"]["User"]; len(user) > 0 && user[0] != "root" {
		t.Errorf("User = %q: golens runs as root with reduced capabilities", user)
	}
	// Paths the agent needs must not be hidden: it reads /proc/PID/* and
	// /sys, and writes nothing.
	for _, k := range []string{"InaccessiblePaths", "ProtectProc", "ProcSubset", "TemporaryFileSystem"} {
		if v := u["Service"][k]; len(v) > 0 {
			t.Errorf("%s = %q hides what golens reads", k, v)
		}
	}
	if got := u["Install"]["WantedBy"]; !slices.Equal(got, []string{"multi-user.target"}) {
		t.Errorf("[Install] WantedBy = %q", got)
	}
}

// TestInstallScript installs into a staging directory the way a package
// build would, with `make install` and with the script's own variables, and
// checks what lands where: and that an admin's edited config survives.
func TestInstallScript(t *testing.T) {
	root := repoRoot(t)

	// The Makefile target, default PREFIX: builds golens itself.
	dest := t.TempDir()
	run(t, root, nil, "make", "--no-print-directory", "install", "DESTDIR="+dest)
	checkInstalled(t, dest, "/usr/local/bin", "/usr/local/lib/systemd/system", "/etc")

	// A distribution's layout.
	dest = t.TempDir()
	installInto(t, "DESTDIR="+dest, "PREFIX=/usr")
	checkInstalled(t, dest, "/usr/bin", "/usr/lib/systemd/system", "/etc")

	// Again over an edited config: kept, the new example beside it.
	cfg := filepath.Join(dest, "etc/golens/config.yaml")
	if err := os.WriteFile(cfg, []byte("pids: [1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := installInto(t, "DESTDIR="+dest, "PREFIX=/usr")
	if got := readFile(t, cfg); got != "pids: [1]\n" {
		t.Errorf("reinstall replaced the edited config:\n%s", got)
	}
	if got, want := readFile(t, cfg+".dist"), readFile(t, filepath.Join(root, "deploy/systemd/config.yaml")); got != want {
		t.Errorf("config.yaml.dist is not the example config")
	}
	if !strings.Contains(out, "kept the existing /etc/golens/config.yaml") {
		t.Errorf("reinstall did not say it kept the config:\n%s", out)
	}
}

// checkInstalled checks the files under dest, and that nothing else was
// installed (no unit enabled, nothing started).
func checkInstalled(t *testing.T, dest, bindir, unitdir, etc string) {
	t.Helper()
	root := repoRoot(t)
	want := map[string]os.FileMode{
		bindir + "/golens":            0o755,
		unitdir + "/golens.service":   0o644,
		etc + "/golens/golens.env":    0o600,
		etc + "/golens/config.yaml":   0o644,
		etc + "/golens/sampling.json": 0o644,
	}
	var got []string
	filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, strings.TrimPrefix(p, dest))
		}
		return err
	})
	for p, mode := range want {
		if !slices.Contains(got, p) {
			t.Errorf("%s not installed (have %q)", p, got)
			continue
		}
		if m := fileMode(t, dest+p); m != mode {
			t.Errorf("%s: mode %o, want %o", p, m, mode)
		}
	}
	for _, p := range got {
		if _, ok := want[p]; !ok && !strings.HasSuffix(p, ".dist") {
			t.Errorf("unexpected file installed: %s", p)
		}
	}
	bin := dest + bindir + "/golens"
	if v := agentVersion(t, bin); v == "" {
		t.Errorf("installed golens prints no version")
	}
	// Static: it runs on any distribution.
	if out, _ := runErr("", nil, "ldd", bin); !strings.Contains(out, "not a dynamic executable") && !strings.Contains(out, "statically linked") {
		t.Errorf("installed golens is not static:\n%s", out)
	}
	unit := readFile(t, dest+unitdir+"/golens.service")
	if !strings.Contains(unit, "\nExecStart="+bindir+"/golens --config /etc/golens/config.yaml $GOLENS_ARGS\n") {
		t.Errorf("unit's ExecStart does not name %s/golens", bindir)
	}
	for _, f := range []string{"config.yaml", "golens.env"} {
		if got, want := readFile(t, dest+etc+"/golens/"+f), readFile(t, filepath.Join(root, "deploy/systemd", f)); got != want {
			t.Errorf("%s differs from deploy/systemd/%s", f, f)
		}
	}
}

// envFile reads KEY=value lines as systemd's EnvironmentFile= does (no
// quoting used in ours).
func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, line := range strings.Split(readFile(t, path), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=value", path, line)
		}
		env[k] = v
	}
	return env
}

// TestSystemdConfigAccepted runs the agent the way the unit does, with the
// example config and environment file: golens must accept both (a rejected
// flag or config key is exit status 64 at once), serve /healthz, and stop
// cleanly on SIGTERM.
func TestSystemdConfigAccepted(t *testing.T) {
	root := repoRoot(t)
	agent := buildAgent(t, t.TempDir())
	env := envFile(t, filepath.Join(root, "deploy/systemd/golens.env"))
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "GOLENS_ARGS"} {
		if _, ok := env[k]; !ok {
			t.Errorf("golens.env does not set %s", k)
		}
	}
	// Spans go to a receiver of the test's, not to the example's Collector.
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = recv.Addr()
	env["OTEL_EXPORTER_OTLP_INSECURE"] = "true"

	maddr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--config", filepath.Join(root, "deploy/systemd/config.yaml")}, strings.Fields(env["GOLENS_ARGS"])...)
	args = append(args, "--metrics-addr", maddr)
	cmd := exec.Command(agent, args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	healthy := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !healthy; {
		select {
		case <-done:
			code := cmd.ProcessState.ExitCode()
			if code == 64 {
				t.Fatalf("golens rejected the example config or environment (exit 64):\n%s", log.String())
			}
			if why := harness.EBPFUnavailable(); why != "" && !inCI() {
				t.Skipf("config accepted, but golens cannot run here (%s): exit %d", why, code)
			}
			t.Fatalf("golens exited %d with the example config:\n%s", code, log.String())
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get("http://" + maddr + "/healthz"); err == nil {
			resp.Body.Close()
			healthy = resp.StatusCode == http.StatusOK
		}
	}
	if !healthy {
		cmd.Process.Kill()
		<-done
		t.Fatalf("golens with the example config never answered /healthz:\n%s", log.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit %d after SIGTERM, want 0:\n%s", code, log.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("golens did not stop within 10 s of SIGTERM (the unit's TimeoutStopSec is 15 s)")
	}
	// inject_context: auto, on a kernel that can (this one): injecting.
	if !strings.Contains(log.String(), "inject_context=true") {
		t.Errorf("the example config (inject_context: auto) did not turn injection on here:\n%s", log.String())
	}
}

// sameSet tells whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
