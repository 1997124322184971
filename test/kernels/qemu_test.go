package kernels

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golens/golens/probes/kernel"
	"github.com/golens/golens/test/harness"
)

// cacheDir is where kernel packages are kept between runs.
func cacheDir(t *testing.T) string {
	t.Helper()
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, ".cache", "golens-test", "kernels")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var fetchMu sync.Mutex

// aptOptions are the apt-get and apt-cache options that read suite's
// package lists, kept in the cache, instead of the machine's own sources
// (nil for those): a kernel of an older release, such as bullseye's 5.10,
// is fetched without touching the machine's apt configuration. A suite
// "bookworm/arm64" is that suite's packages of another architecture, as
// native (names without ":arm64"), again without dpkg --add-architecture.
func aptOptions(t *testing.T, cache, suite string) []string {
	t.Helper()
	if suite == "" {
		return nil
	}
	suite, arch, _ := strings.Cut(suite, "/")
	dir := filepath.Join(cache, "apt-"+suite)
	opts := []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(dir, "sources.list"),
		"-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
	}
	src := "deb http://deb.debian.org/debian " + suite + " main\n"
	if arch != "" {
		dir += "-" + arch
		opts = []string{
			"-o", "Dir::Etc::SourceList=" + filepath.Join(dir, "sources.list"),
			"-o", "Dir::Etc::SourceParts=/dev/null",
			"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
			"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
			"-o", "APT::Architecture=" + arch,
			"-o", "APT::Architectures::=" + arch,
		}
		src = "deb [arch=" + arch + "] http://deb.debian.org/debian " + suite + " main\n"
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "lists", "*_Packages*")); len(m) > 0 {
		return opts
	}
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "sources.list"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("apt-get", append(opts, "-q", "update")...).CombinedOutput(); err != nil {
		t.Fatalf("apt-get update for %s: %v\n%s", suite, err, b)
	}
	return opts
}

// debianKernel returns the vmlinuz of the newest package in Debian's
// archive (suite's, or the machine's sources when empty) whose name
// matches re (one group: the ABI number), downloading and unpacking it
// into the cache the first time. With no apt lists to ask, the newest
// cached one is used.
func debianKernel(t *testing.T, re *regexp.Regexp, suite string) string {
	t.Helper()
	fetchMu.Lock()
	defer fetchMu.Unlock()
	cache := cacheDir(t)
	apt := aptOptions(t, cache, suite)
	newest := func(names []string) string {
		best, bestN := "", -1
		for _, n := range names {
			if m := re.FindStringSubmatch(n); m != nil {
				if v, _ := strconv.Atoi(m[1]); v > bestN {
					best, bestN = n, v
				}
			}
		}
		return best
	}
	vmlinuzOf := func(name string) string {
		vm, _ := filepath.Glob(filepath.Join(cache, name, "boot", "vmlinuz-*"))
		if len(vm) != 1 {
			return ""
		}
		return vm[0]
	}
	entries, _ := os.ReadDir(cache)
	var cachedNames []string
	for _, d := range entries {
		if vmlinuzOf(d.Name()) != "" {
			cachedNames = append(cachedNames, d.Name())
		}
	}
	cached := newest(cachedNames)
	out, _ := exec.Command("apt-cache", append(apt, "pkgnames", "linux-image-")...).Output()
	name := newest(strings.Fields(string(out)))
	switch {
	case name == "" && cached == "":
		t.Fatalf("no kernel package matching %s in apt's lists (run apt-get update) nor in %s", re, cache)
	case name == "":
		return vmlinuzOf(cached)
	case vmlinuzOf(name) != "":
		return vmlinuzOf(name)
	}
	dir := filepath.Join(cache, name)
	tmp, err := os.MkdirTemp(cache, "fetch-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	dl := exec.Command("apt-get", append(apt, "download", name)...)
	dl.Dir = tmp
	if b, err := dl.CombinedOutput(); err != nil {
		if cached != "" { // the archive moved on or is out of reach
			t.Logf("apt-get download %s: %v; booting the cached %s", name, err, cached)
			return vmlinuzOf(cached)
		}
		t.Fatalf("apt-get download %s: %v\n%s", name, err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download %s left %d packages", name, len(debs))
	}
	unpacked := filepath.Join(tmp, "root")
	if b, err := exec.Command("dpkg-deb", "-x", debs[0], unpacked).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", debs[0], err, b)
	}
	// Only the kernel is kept: the guest loads no modules.
	vm, _ := filepath.Glob(filepath.Join(unpacked, "boot", "vmlinuz-*"))
	if len(vm) != 1 {
		t.Fatalf("%s holds %d vmlinuz", name, len(vm))
	}
	if err := os.MkdirAll(filepath.Join(tmp, "keep", "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(vm[0], filepath.Join(tmp, "keep", "boot", filepath.Base(vm[0]))); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(tmp, "keep"), dir); err != nil && vmlinuzOf(name) == "" {
		t.Fatal(err) // not another run that cached it first
	}
	t.Logf("fetched %s in %s (cached in %s)", name, time.Since(start).Round(time.Second), dir)
	return filepath.Join(dir, "boot", filepath.Base(vm[0]))
}

// need fails the test naming the Debian package when a command is missing:
// scripts/test-deps.sh installs them, so a run never passes having booted
// nothing.
func need(t *testing.T, cmd, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(cmd)
	if err != nil {
		t.Fatalf("%s not found: install Debian package %s (make deps does)", cmd, pkg)
	}
	return p
}

// staticAgent builds cmd/golens without cgo: the guest has no libc.
func staticAgent(t *testing.T, dir string) []byte {
	t.Helper()
	return staticAgentFor(t, dir, "")
}

// staticAgentFor builds it for GOARCH arch ("" for the machine's own).
func staticAgentFor(t *testing.T, dir, arch string) []byte {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "golens"+arch)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/golens")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if arch != "" {
		cmd.Env = append(cmd.Env, "GOOS=linux", "GOARCH="+arch)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build golens: %v\n%s", err, b)
	}
	return readFile(t, out)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// static is nil when path is an ELF executable with no interpreter: one
// that runs in a guest without libc.
func static(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

const (
	guestTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	guestParent = "00f067aa0ba902b7"
	guestOK     = 3 // requests to /hello, each with the traceparent
)

// guestSetup begins every guest's /init: busybox's commands, and the file
// systems and the loopback interface golens and the targets need.
const guestSetup = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p /tmp
ip link set lo up
`

// guestInit is the guest's /init: mount what golens needs, start the
// target and the agent, drive requests with an incoming traceparent, stop
// the agent with SIGTERM and print everything on the console, prefixed.
// When the initramfs holds /cells.sh (cells_test.go), the cells' targets
// start with the target, run under the same agent, and their requests
// follow the target's.
var guestInit = guestSetup + `echo "guest: kernel $(uname -r)"
OTEL_SERVICE_NAME=qemusvc GODEBUG=httpmuxgo121=0 /httpserver -addr 127.0.0.1:8080 >/tmp/app.log 2>&1 &
app=$!
i=0
until grep -q listening /tmp/app.log; do i=$((i+1)); [ $i -gt 600 ] && break; sleep 0.1; done
if [ "$(cat /inject-refused)" = 1 ]; then
	/golens --pid $app --inject-context --exporter console --metrics-addr 127.0.0.1:9465 >/tmp/inject.out 2>/tmp/inject.log
	echo "guest: inject exit=$?"
	sed 's/^/inject: /' /tmp/inject.log /tmp/inject.out
fi
cellpids=
[ -f /cells.sh ] && . /cells.sh
# As the deployments run it: injecting where this kernel can.
/golens --pid $app $cellpids --inject-context=auto --exporter console --metrics-addr 127.0.0.1:9464 >/tmp/spans.log 2>/tmp/golens.log &
agent=$!
i=0
until wget -q -O /dev/null http://127.0.0.1:9464/readyz 2>/dev/null; do
	i=$((i+1)); [ $i -gt 1800 ] && break
	kill -0 $agent 2>/dev/null || break
	sleep 0.1
done
ok=0
for n in $(seq ` + strconv.Itoa(guestOK) + `); do
	wget -q -O /dev/null --header "traceparent: 00-` + guestTrace + `-` + guestParent + `-01" http://127.0.0.1:8080/hello && ok=$((ok+1))
done
echo "guest: served $ok"
wget -q -O /dev/null --header "traceparent: 00-` + guestTrace + `-` + guestParent + `-01" http://127.0.0.1:8080/status/503
[ -f /cells.sh ] && cells_drive
wget -q -O /tmp/metrics http://127.0.0.1:9464/metrics
grep '^golens_kernel_feature' /tmp/metrics | sed 's/^/metric: /'
kill -TERM $agent
wait $agent
echo "guest: golens exit=$?"
sed 's/^/log: /' /tmp/golens.log
sed 's/^/out: /' /tmp/spans.log
echo "guest: done"
poweroff -f
`

// boot runs the guest, an arch ("" for amd64, or "arm64") machine, and
// returns its console output.
func boot(t *testing.T, arch, vmlinuz, initrd string, timeout time.Duration) string {
	t.Helper()
	guestSlots <- struct{}{}
	defer func() { <-guestSlots }()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// TCG: a nested KVM guest hangs on these machines (shared/KERNEL.md).
	qemu, machine, console := "qemu-system-x86_64", []string{"-cpu", "max"}, "ttyS0"
	if arch == "arm64" {
		// QEMU's generic arm64 board, emulated; its UART is a PL011.
		qemu, machine, console = "qemu-system-aarch64", []string{"-M", "virt", "-cpu", "max"}, "ttyAMA0"
	}
	cmd := exec.CommandContext(ctx, qemu, append(machine, "-m", "1024", "-smp", "1",
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
		"-kernel", vmlinuz, "-initrd", initrd,
		"-append", "console="+console+" panic=-1 quiet rdinit=/init")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("guest ran %s", time.Since(start).Round(time.Second))
	if ctx.Err() != nil {
		t.Fatalf("guest did not finish within %s:\n%s", timeout, out.String())
	}
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, out.String())
	}
	return strings.ReplaceAll(out.String(), "\r\n", "\n")
}

// A guest kernel and what golens must find missing in it.
type guestKernel struct {
	name    string
	pkg     *regexp.Regexp // Debian package name; one group, the ABI number
	suite   string         // Debian suite to fetch it from; "" for the machine's sources
	release string         // uname -r prefix
	missing []string       // kernel features, in kernel.Features order
	// refused: a required feature is missing, golens must exit 69 at once.
	refused bool
	// arch is the guest's GOARCH, "" for amd64; its kernel is emulated
	// and slower, so it gets timeout (170 s when zero).
	arch    string
	timeout time.Duration
	// traced, for a guest of a test of its own (not runGuest's script),
	// says what it traced, in the README's support table.
	traced string
}

// Debian's kernels of today's nodes. In each the real static agent
// probes the features (exactly the ones listed missing, each logged once
// with its effect, the rest present in golens_kernel_feature), attaches
// (through per-uprobe perf-event links where uprobe_multi is missing),
// continues the incoming trace in exactly one server span per request with
// the right status, and exits 0 on SIGTERM. Where --inject-context cannot
// work it is refused with one clear line and exit 69 before anything is
// attached; the agent then runs as the deployments run it,
// --inject-context=auto: without injection, saying so in one line, where
// the kernel cannot, with it where it can. Each kernel that traces also
// runs the cells (cells_test.go): chained HTTP and gRPC calls between
// watched processes, stripped builds among them, every span exact.
func TestDebianKernels(t *testing.T) {
	t.Parallel() // its guests take turns with the others' in guestSlots
	need(t, "qemu-system-x86_64", "qemu-system-x86")
	need(t, "apt-get", "apt")
	need(t, "dpkg-deb", "dpkg")
	busybox := "/bin/busybox"
	if err := static(busybox); err != nil {
		t.Fatalf("%v: install Debian package busybox-static", err)
	}
	dir := t.TempDir()
	app, err := harness.BuildApp("httpserver", harness.Variant{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	common := []entry{
		{name: "bin", mode: modeDir | 0o755},
		{name: "dev", mode: modeDir | 0o755},
		{name: "dev/console", mode: modeChar | 0o600, major: 5, minor: 1},
		{name: "proc", mode: modeDir | 0o755},
		{name: "sys", mode: modeDir | 0o755},
		{name: "tmp", mode: modeDir | 0o1777},
		{name: "bin/busybox", mode: modeFile | 0o755, data: readFile(t, busybox)},
		{name: "init", mode: modeFile | 0o755, data: []byte(guestInit)},
		{name: "golens", mode: modeFile | 0o755, data: staticAgent(t, dir)},
		{name: "httpserver", mode: modeFile | 0o755, data: readFile(t, app)},
	}
	cells := cellEntries(t, dir)
	for _, k := range amd64Kernels {
		files := common
		if !k.refused {
			files = append(files[:len(files):len(files)], cells...)
		}
		t.Run(k.name, func(t *testing.T) {
			t.Parallel() // as many guests at once as guestSlots lets boot
			runGuest(t, k, files, dir)
		})
	}
}

// amd64Kernels are the amd64 guests: Debian's kernels of today's nodes.
var amd64Kernels = []guestKernel{
	// Debian 11: older than the floor (no bpf_loop, 5.17).
	{name: "debian11-5.10", pkg: regexp.MustCompile(`^linux-image-5\.10\.0-(\d+)-cloud-amd64$`), suite: "bullseye", release: "5.10.",
		missing: []string{"bpf_loop", "uprobe_multi", "sock_ops_current_pid"}, refused: true},
	// Debian 12: no uprobe_multi (6.6), and sock_ops programs cannot
	// call bpf_get_current_pid_tgid.
	{name: "debian12-6.1", pkg: regexp.MustCompile(`^linux-image-6\.1\.0-(\d+)-cloud-amd64$`), release: "6.1.0-",
		missing: []string{"uprobe_multi", "sock_ops_current_pid"}},
	// Debian 12 backports (Debian 13's line).
	{name: "debian12-backports-6.12", pkg: regexp.MustCompile(`^linux-image-6\.12\.(\d+)\+deb12-cloud-amd64$`), release: "6.12.",
		missing: nil},
	// Debian 13 backports: the CI machines' own line (6.18), booted as
	// Debian builds it, with kprobes and all, unlike the host's.
	{name: "debian13-backports-6.18", pkg: regexp.MustCompile(`^linux-image-6\.18\.(\d+)\+deb13-cloud-amd64$`), suite: "trixie-backports", release: "6.18.",
		missing: nil},
}

func runGuest(t *testing.T, k guestKernel, common []entry, dir string) {
	vmlinuz := debianKernel(t, k.pkg, k.suite)
	missing := make(map[string]bool)
	injectRefused := false
	for _, f := range kernel.Features {
		for _, m := range k.missing {
			if m == f.Name {
				missing[m] = true
				injectRefused = injectRefused || f.Use == kernel.Injection
			}
		}
	}
	flag := "0"
	if injectRefused {
		flag = "1"
	}
	initrd := filepath.Join(dir, k.name+".cpio")
	if err := writeInitramfs(initrd, append(common, entry{name: "inject-refused", mode: modeFile | 0o644, data: []byte(flag)})); err != nil {
		t.Fatal(err)
	}

	timeout := k.timeout
	if timeout == 0 {
		timeout = guestTimeout(common)
	}
	out := boot(t, k.arch, vmlinuz, initrd, timeout)
	lines := func(prefix string) []string {
		var ls []string
		for _, l := range strings.Split(out, "\n") {
			// The firmware's terminal escapes may precede the first line.
			if i := strings.Index(l, prefix); i >= 0 {
				ls = append(ls, l[i+len(prefix):])
			}
		}
		return ls
	}
	if !strings.Contains(out, "guest: done") {
		t.Fatalf("guest did not finish its script:\n%s", out)
	}
	if r := lines("guest: kernel "); len(r) != 1 || !strings.HasPrefix(r[0], k.release) {
		t.Fatalf("guest kernel %q, want %s*:\n%s", r, k.release, out)
	}

	// The target is never harmed: it serves every request, traced or not.
	if sv := lines("guest: served "); len(sv) != 1 || sv[0] != strconv.Itoa(guestOK) {
		t.Errorf("target served %q of %d requests:\n%s", sv, guestOK, out)
	}
	// What stops golens (required features), and --inject-context too.
	var stopsMain, stopsInject []string
	for _, f := range kernel.Features {
		if missing[f.Name] && f.Use == kernel.Required {
			stopsMain = append(stopsMain, f.Name)
		}
		if missing[f.Name] && f.Use != kernel.Batching {
			stopsInject = append(stopsInject, f.Name)
		}
	}
	needs := "--inject-context needs "
	if k.refused {
		needs = "golens needs "
	}
	if injectRefused {
		stops := stopsInject
		if e := lines("guest: inject exit="); len(e) != 1 || e[0] != "69" {
			t.Errorf("golens --inject-context exit status %q, want 69:\n%s", e, out)
		}
		inject := strings.Join(lines("inject: "), "\n")
		if strings.Count(inject, "level=ERROR") != 1 || !strings.Contains(inject,
			`msg="cannot run on this kernel" kernel=`+k.release) || !strings.Contains(inject,
			`err="kernel unsupported: `+needs+strings.Join(stops, ", ")+`, which this kernel lacks"`) ||
			strings.Contains(inject, "msg=attached") {
			t.Errorf("want one clear refusal of --inject-context naming %v, nothing attached:\n%s", stops, inject)
		}
	} else if e := lines("guest: inject exit="); len(e) != 0 {
		t.Errorf("--inject-context was refused on a kernel that has what it needs:\n%s", out)
	}

	if k.refused {
		// Refused at start-up: one line, exit 69, nothing attached or
		// served; auto adds no reason of its own.
		log := strings.Join(lines("log: "), "\n")
		if e := lines("guest: golens exit="); len(e) != 1 || e[0] != "69" {
			t.Errorf("golens exit status %q, want 69:\n%s", e, out)
		}
		if strings.Count(log, "level=ERROR") != 1 || !strings.Contains(log,
			`msg="cannot run on this kernel" kernel=`+k.release) || !strings.Contains(log,
			`err="kernel unsupported: golens needs `+strings.Join(stopsMain, ", ")+`, which this kernel lacks"`) ||
			strings.Contains(log, "msg=attached") || strings.Contains(log, "golens running") {
			t.Errorf("want one clear refusal naming %v, nothing attached:\n%s", stopsMain, log)
		}
		if m, sp := lines("metric: "), lines("out: "); len(m) != 0 || len(sp) != 0 {
			t.Errorf("a refused agent served metrics %q or spans %q", m, sp)
		}
		return
	}

	var want []string
	for _, f := range kernel.Features {
		v := 1
		if missing[f.Name] {
			v = 0
		}
		want = append(want, fmt.Sprintf("golens_kernel_feature{feature=%q} %d", f.Name, v))
	}
	got := lines("metric: ")
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("kernel features:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	log := strings.Join(lines("log: "), "\n")
	if n := strings.Count(log, `msg="kernel feature missing"`); n != len(k.missing) {
		t.Errorf("%d missing-feature lines, want %d (%v):\n%s", n, len(k.missing), k.missing, log)
	}
	for _, m := range k.missing {
		if !strings.Contains(log, `msg="kernel feature missing" feature=`+m+` `) {
			t.Errorf("no missing-feature line for %s:\n%s", m, log)
		}
	}
	if m := fmt.Sprintf("kernel_missing=%q", fmt.Sprint(k.missing)); k.missing == nil && !strings.Contains(log, "kernel_missing=[]") ||
		k.missing != nil && !strings.Contains(log, m) {
		t.Errorf("start-up line does not name the missing features %v:\n%s", k.missing, log)
	}
	if strings.Contains(log, "level=ERROR") || !strings.Contains(log, "msg=attached") {
		t.Errorf("agent did not attach cleanly:\n%s", log)
	}
	// --inject-context=auto: one line where it goes without, and the
	// start-up line says which.
	off := `msg="no context injection on the wire: this kernel cannot do it (--inject-context=auto)" kernel=` + k.release
	if n := strings.Count(log, off); injectRefused && (n != 1 || !strings.Contains(log, strings.Join(stopsInject, ", ")+", which this kernel lacks")) || !injectRefused && n != 0 {
		t.Errorf("%d lines %q, want one naming %v where the kernel cannot inject (%v):\n%s", n, off, stopsInject, injectRefused, log)
	}
	if want := fmt.Sprintf("inject_context=%v", !injectRefused); !strings.Contains(log, want) {
		t.Errorf("start-up line lacks %s:\n%s", want, log)
	}

	// Spans: one server span per request, in the caller's trace.
	var spans []string
	for _, s := range lines("out: ") {
		if strings.Contains(s, " trace="+guestTrace+" ") || !hasCells(common) {
			spans = append(spans, s)
		}
	}
	if len(spans) != guestOK+1 {
		t.Fatalf("%d spans, want %d:\n%s", len(spans), guestOK+1, out)
	}
	codes := map[string]int{}
	status := regexp.MustCompile(` status=(\w+) .*http\.response\.status_code=(\d+)`)
	for _, s := range spans {
		if !strings.HasPrefix(s, `span service="qemusvc" name="GET `) ||
			!strings.Contains(s, " kind=server trace="+guestTrace+" ") ||
			!strings.Contains(s, " parent="+guestParent+" ") {
			t.Errorf("span not continuing the caller's trace as a server span: %s", s)
		}
		m := status.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("span without status: %s", s)
			continue
		}
		codes[m[1]+" "+m[2]]++
	}
	if codes["Unset 200"] != guestOK || codes["Error 503"] != 1 {
		t.Errorf("span statuses %v, want %d × Unset 200 and 1 × Error 503", codes, guestOK)
	}
	if e := lines("guest: golens exit="); len(e) != 1 || e[0] != "0" {
		t.Errorf("golens exit status %q in the guest, want 0; log:\n%s", e, log)
	}
	if hasCells(common) {
		checkCells(t.Errorf, lines, out)
	}
}
