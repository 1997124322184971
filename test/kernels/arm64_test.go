package kernels

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// arm64Suite is where the arm64 guest's kernel and busybox come from:
// Debian 12's arm64 packages, through lists of their own in the cache.
const arm64Suite = "bookworm/arm64"

// TestDebianKernelArm64 boots Debian 12's arm64 kernel (6.1) on QEMU's
// emulated arm64 board and runs the real linux/arm64 agent, with its arm64
// eBPF objects, on a real linux/arm64 Go server inside it: the same script
// and the same exact assertions as the amd64 guests (features missing,
// --inject-context refused with one line, one server span per request
// continuing the caller's trace with the right status, exit 0).
func TestDebianKernelArm64(t *testing.T) {
	need(t, "qemu-system-aarch64", "qemu-system-arm")
	need(t, "apt-get", "apt")
	need(t, "dpkg-deb", "dpkg")
	dir := t.TempDir()
	start := time.Now()
	busybox := debianBusybox(t, arm64Suite)
	app, err := harness.BuildApp("httpserver", harness.Variant{Arch: "arm64"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	agent := staticAgentFor(t, dir, "arm64")
	t.Logf("arm64 busybox, agent and target ready in %s", time.Since(start).Round(time.Second))
	common := []entry{
		{name: "bin", mode: modeDir | 0o755},
		{name: "dev", mode: modeDir | 0o755},
		{name: "dev/console", mode: modeChar | 0o600, major: 5, minor: 1},
		{name: "proc", mode: modeDir | 0o755},
		{name: "sys", mode: modeDir | 0o755},
		{name: "tmp", mode: modeDir | 0o1777},
		{name: "bin/busybox", mode: modeFile | 0o755, data: readFile(t, busybox)},
		{name: "init", mode: modeFile | 0o755, data: []byte(guestInit)},
		{name: "golens", mode: modeFile | 0o755, data: agent},
		{name: "httpserver", mode: modeFile | 0o755, data: readFile(t, app)},
	}
	k := guestKernel{
		name: "debian12-6.1-arm64", pkg: regexp.MustCompile(`^linux-image-6\.1\.0-(\d+)-cloud-arm64$`),
		suite: arm64Suite, release: "6.1.0-",
		missing: []string{"uprobe_multi", "sock_ops_current_pid"},
		arch:    "arm64",
		// Emulated, the kernel boots in ~13 s and Go runs several times
		// slower than under the x86 guests' TCG.
		timeout: 300 * time.Second,
	}
	runGuest(t, k, common, dir)
}

// debianBusybox returns the static busybox of suite's busybox-static
// package ("bookworm/arm64": the arm64 one), downloaded into the cache the
// first time.
func debianBusybox(t *testing.T, suite string) string {
	t.Helper()
	fetchMu.Lock()
	defer fetchMu.Unlock()
	cache := cacheDir(t)
	dest := filepath.Join(cache, "busybox-static-"+filepath.Base(suite), "busybox")
	if _, err := os.Stat(dest); err == nil {
		return dest
	}
	apt := aptOptions(t, cache, suite)
	tmp, err := os.MkdirTemp(cache, "fetch-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dl := exec.Command("apt-get", append(apt, "download", "busybox-static")...)
	dl.Dir = tmp
	if b, err := dl.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download busybox-static (%s): %v\n%s", suite, err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download busybox-static left %d packages", len(debs))
	}
	root := filepath.Join(tmp, "root")
	if b, err := exec.Command("dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", debs[0], err, b)
	}
	bb := filepath.Join(root, "bin", "busybox")
	if err := static(bb); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bb, dest); err != nil {
		t.Fatal(err)
	}
	return dest
}
