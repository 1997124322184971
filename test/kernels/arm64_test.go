package kernels

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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
	t.Parallel() // its guests take turns with the others' in guestSlots
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
	k := arm64Kernel
	runGuest(t, k, common, dir)
}

// debianBusybox returns the static busybox of suite's busybox-static
// package ("bookworm/arm64": the arm64 one), downloaded into the cache the
// first time.
func debianBusybox(t *testing.T, suite string) string {
	t.Helper()
	bb := debianFile(t, suite, "busybox-static", "bin/busybox")
	if err := static(bb); err != nil {
		t.Fatal(err)
	}
	return bb
}

// debianFile returns the file member (a path inside the package) of suite's
// package pkg, downloaded and unpacked into the cache the first time.
func debianFile(t *testing.T, suite, pkg, member string) string {
	t.Helper()
	fetchMu.Lock()
	defer fetchMu.Unlock()
	cache := cacheDir(t)
	dest := filepath.Join(cache, pkg+"-"+filepath.Base(suite), filepath.Base(member))
	if _, err := os.Stat(dest); err == nil {
		return dest
	}
	apt := aptOptions(t, cache, suite)
	tmp, err := os.MkdirTemp(cache, "fetch-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dl := exec.Command("apt-get", append(apt, "download", pkg)...)
	dl.Dir = tmp
	if b, err := dl.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download %s (%s): %v\n%s", pkg, suite, err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download %s left %d packages", pkg, len(debs))
	}
	root := filepath.Join(tmp, "root")
	if b, err := exec.Command("dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", debs[0], err, b)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, member), dest); err != nil {
		t.Fatal(err)
	}
	return dest
}

// Trace ids and the caller's parent span of the chained guest's requests.
const (
	chainTrace     = "0af7651916cd43dd8448eb211c80319c"
	panicTrace     = "1af7651916cd43dd8448eb211c80319c"
	recoveredTrace = "2af7651916cd43dd8448eb211c80319c"
	helloTrace     = "3af7651916cd43dd8448eb211c80319c"
	chainParent    = "b7ad6b7169203331"
)

// chainInit is the /init of the chained arm64 guest: target A (symbols and
// DWARF) and target B (stripped PIE: functions from .gopclntab, offsets
// from the tables) both watched by one agent; A calls B, A panics, B
// recovers a panic in its middleware, B answers.
var chainInit = guestSetup + `echo "guest: kernel $(uname -r) $(uname -m)"
OTEL_SERVICE_NAME=arm64a GODEBUG=httpmuxgo121=0 /httpserver -addr 127.0.0.1:8080 >/tmp/a.log 2>&1 &
a=$!
OTEL_SERVICE_NAME=arm64b GODEBUG=httpmuxgo121=0 /httpserver-stripped-pie -addr 127.0.0.1:8081 >/tmp/b.log 2>&1 &
b=$!
i=0
until grep -q listening /tmp/a.log && grep -q listening /tmp/b.log; do i=$((i+1)); [ $i -gt 600 ] && break; sleep 0.1; done
/golens --pid $a --pid $b --exporter console --log-level debug --metrics-addr 127.0.0.1:9464 >/tmp/spans.log 2>/tmp/golens.log &
agent=$!
i=0
until wget -q -O /dev/null http://127.0.0.1:9464/readyz 2>/dev/null; do
	i=$((i+1)); [ $i -gt 600 ] && break
	kill -0 $agent 2>/dev/null || break
	sleep 0.1
done
tp() { echo "traceparent: 00-$1-` + chainParent + `-01"; }
wget -q -O /tmp/r1 --header "$(tp ` + chainTrace + `)" "http://127.0.0.1:8080/chain?to=http%3A%2F%2F127.0.0.1%3A8081%2Fecho%2Flinked"
echo "guest: chain exit=$?"
wget -q -O /tmp/r2 --header "$(tp ` + panicTrace + `)" http://127.0.0.1:8080/panic
echo "guest: panic exit=$?"
wget -q -O /tmp/r3 --header "$(tp ` + recoveredTrace + `)" http://127.0.0.1:8081/recovered
echo "guest: recovered exit=$?"
wget -q -O /tmp/r4 --header "$(tp ` + helloTrace + `)" http://127.0.0.1:8081/hello
echo "guest: hello exit=$? $(cat /tmp/r4)"
` + awaitSixSpans + `
wget -q -O /tmp/metrics http://127.0.0.1:9464/metrics
grep -E '^golens_(spans_(un)?linked_total|spans_held|events_read_total)' /tmp/metrics | sed 's/^/metric: /'
kill -TERM $agent
wait $agent
echo "guest: golens exit=$?"
sed 's/^/log: /' /tmp/golens.log
sed 's/^/out: /' /tmp/spans.log
sed 's/^/app: /' /tmp/a.log /tmp/b.log
echo "guest: done"
poweroff -f
`

// consoleSpan is one line of --exporter console, split into its fields.
type consoleSpan struct {
	service, name, kind, trace, span, parent, status string
	attrs                                            string
}

var consoleSpanRe = regexp.MustCompile(`^span service="([^"]*)" name="([^"]*)" kind=(\w+) trace=([0-9a-f]{32}) span=([0-9a-f]{16})(?: parent=([0-9a-f]{16}))? duration=\S+ status=(\w+)(.*)$`)

// TestDebianKernelArm64Chain: in the same arm64 guest, the exact trace of
// a chained call between two watched targets (A's server span under the
// caller, A's client span under it, B's server span under that, linked by
// their TCP connection), a panic net/http recovers (the panic probe and
// arm64's entry SP), a panic the handler's middleware recovers, with A
// built with symbols and DWARF and B stripped and PIE.
func TestDebianKernelArm64Chain(t *testing.T) {
	t.Parallel() // its guests take turns with the others' in guestSlots
	need(t, "qemu-system-aarch64", "qemu-system-arm")
	dir := t.TempDir()
	busybox := debianBusybox(t, arm64Suite)
	// A Go PIE names the dynamic loader as its interpreter, even without
	// cgo (it needs no library): the guest gets libc6's.
	loader := debianFile(t, arm64Suite, "libc6", "lib/aarch64-linux-gnu/ld-linux-aarch64.so.1")
	a, err := harness.BuildApp("httpserver", harness.Variant{Arch: "arm64"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := harness.BuildApp("httpserver", harness.Variant{Arch: "arm64", Stripped: true, PIE: true}, dir)
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "chain.gz")
	err = writeInitramfs(initrd, []entry{
		{name: "bin", mode: modeDir | 0o755},
		{name: "dev", mode: modeDir | 0o755},
		{name: "dev/console", mode: modeChar | 0o600, major: 5, minor: 1},
		{name: "proc", mode: modeDir | 0o755},
		{name: "sys", mode: modeDir | 0o755},
		{name: "tmp", mode: modeDir | 0o1777},
		{name: "lib", mode: modeDir | 0o755},
		{name: "lib/ld-linux-aarch64.so.1", mode: modeFile | 0o755, data: readFile(t, loader)},
		{name: "bin/busybox", mode: modeFile | 0o755, data: readFile(t, busybox)},
		{name: "init", mode: modeFile | 0o755, data: []byte(chainInit)},
		{name: "golens", mode: modeFile | 0o755, data: staticAgentFor(t, dir, "arm64")},
		{name: "httpserver", mode: modeFile | 0o755, data: readFile(t, a)},
		{name: "httpserver-stripped-pie", mode: modeFile | 0o755, data: readFile(t, b)},
	})
	if err != nil {
		t.Fatal(err)
	}
	vmlinuz := debianKernel(t, regexp.MustCompile(`^linux-image-6\.1\.0-(\d+)-cloud-arm64$`), arm64Suite)
	out := boot(t, "arm64", vmlinuz, initrd, 420*time.Second)
	lines := func(prefix string) []string {
		var ls []string
		for _, l := range strings.Split(out, "\n") {
			if i := strings.Index(l, prefix); i >= 0 {
				ls = append(ls, l[i+len(prefix):])
			}
		}
		return ls
	}
	if !strings.Contains(out, "guest: done") {
		t.Fatalf("guest did not finish its script:\n%s", out)
	}
	if k := lines("guest: kernel "); len(k) != 1 || !strings.HasPrefix(k[0], "6.1.0-") || !strings.HasSuffix(k[0], " aarch64") {
		t.Fatalf("guest kernel %q, want 6.1.0-* aarch64:\n%s", k, out)
	}
	// What the callers got: 200, no answer, 500 (busybox wget exits 1 on
	// both), and B's body.
	for prefix, want := range map[string]string{"guest: chain exit=": "0", "guest: panic exit=": "1", "guest: recovered exit=": "1", "guest: hello exit=": "0 hello"} {
		if got := lines(prefix); len(got) != 1 || got[0] != want {
			t.Errorf("%s%q, want %q", prefix, got, want)
		}
	}
	log := strings.Join(lines("log: "), "\n")
	if strings.Contains(log, "level=ERROR") || strings.Count(log, "msg=attached") != 2 {
		t.Errorf("agent did not attach cleanly to both targets:\n%s", log)
	}
	if e := lines("guest: golens exit="); len(e) != 1 || e[0] != "0" {
		t.Errorf("golens exit status %q, want 0; log:\n%s", e, log)
	}
	t.Logf("caller lookups:\n%s", callerLookups(log))

	byTrace := map[string][]consoleSpan{}
	raw := lines("out: ")
	for _, l := range raw {
		m := consoleSpanRe.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("unparsed span line: %s", l)
			continue
		}
		s := consoleSpan{m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]}
		byTrace[s.trace] = append(byTrace[s.trace], s)
	}
	t.Logf("spans:\n%s", strings.Join(raw, "\n"))
	t.Logf("linker, after the calls:\n%s", strings.Join(lines("metric: "), "\n"))
	if len(raw) != 6 || len(byTrace) != 4 {
		t.Fatalf("%d spans in %d traces, want 6 in 4:\n%s", len(raw), len(byTrace), strings.Join(raw, "\n"))
	}
	find := func(trace, service, kind string) consoleSpan {
		t.Helper()
		var found []consoleSpan
		for _, s := range byTrace[trace] {
			if s.service == service && s.kind == kind {
				found = append(found, s)
			}
		}
		if len(found) != 1 {
			t.Fatalf("trace %s: %d %s spans of %s, want 1:\n%s", trace, len(found), kind, service, strings.Join(raw, "\n"))
		}
		return found[0]
	}
	attr := func(s consoleSpan, kv string) bool { return strings.Contains(s.attrs+" ", " "+kv+" ") }

	// The chain: caller -> A server -> A client -> B server.
	aSrv := find(chainTrace, "arm64a", "server")
	aCli := find(chainTrace, "arm64a", "client")
	bSrv := find(chainTrace, "arm64b", "server")
	if aSrv.name != "GET /chain" || aSrv.parent != chainParent || aSrv.status != "Unset" || !attr(aSrv, "http.response.status_code=200") {
		t.Errorf("A's server span: %+v", aSrv)
	}
	if aCli.parent != aSrv.span || aCli.status != "Unset" || !attr(aCli, "http.response.status_code=200") || !attr(aCli, "server.port=8081") {
		t.Errorf("A's client span, want under A's server span %s: %+v", aSrv.span, aCli)
	}
	if bSrv.name != "GET /echo/" || bSrv.parent != aCli.span || bSrv.status != "Unset" || !attr(bSrv, "http.response.status_code=200") {
		t.Errorf("B's server span, want under A's client span %s: %+v", aCli.span, bSrv)
	}
	// net/http recovers A's panic: ended by the panic probe, no status sent.
	p := find(panicTrace, "arm64a", "server")
	if p.name != "GET /panic" || p.parent != chainParent || p.status != "Error" || !attr(p, `error.type="panic"`) || strings.Contains(p.attrs, "http.response.status_code") {
		t.Errorf("panicked request's span: %+v", p)
	}
	// B's middleware recovers: the request goes on and answers 500.
	r := find(recoveredTrace, "arm64b", "server")
	if r.name != "GET /recovered" || r.parent != chainParent || r.status != "Error" || !attr(r, "http.response.status_code=500") || attr(r, `error.type="panic"`) {
		t.Errorf("recovered request's span: %+v", r)
	}
	h := find(helloTrace, "arm64b", "server")
	if h.name != "GET /hello" || h.parent != chainParent || h.status != "Unset" || !attr(h, "http.response.status_code=200") {
		t.Errorf("B's hello span: %+v", h)
	}
}

// arm64Boot boots the arm64 guest with busybox, the arm64 agent, libc6's
// loader and files, running script as /init, and returns the console lines
// that start with a prefix, by prefix. It fails the test unless the guest
// ran script to its end on an arm64 6.1 kernel.
func arm64Boot(t *testing.T, dir, script string, files ...entry) func(prefix string) []string {
	t.Helper()
	k := arm64Kernel
	k.timeout = 600 * time.Second // two targets and their calls, besides the boot, on a shared host
	return arm64BootOn(t, k, dir, script, files...)
}

// arm64BootOn is arm64Boot on kernel k, an arm64 guestKernel, waiting for
// the guest at most k.timeout (420 s when zero).
func arm64BootOn(t *testing.T, k guestKernel, dir, script string, files ...entry) func(prefix string) []string {
	t.Helper()
	busybox := debianBusybox(t, arm64Suite)
	loader := debianFile(t, arm64Suite, "libc6", "lib/aarch64-linux-gnu/ld-linux-aarch64.so.1")
	initrd := filepath.Join(dir, "guest.gz")
	err := writeInitramfs(initrd, append([]entry{
		{name: "bin", mode: modeDir | 0o755},
		{name: "dev", mode: modeDir | 0o755},
		{name: "dev/console", mode: modeChar | 0o600, major: 5, minor: 1},
		{name: "proc", mode: modeDir | 0o755},
		{name: "sys", mode: modeDir | 0o755},
		{name: "tmp", mode: modeDir | 0o1777},
		{name: "lib", mode: modeDir | 0o755},
		{name: "lib/ld-linux-aarch64.so.1", mode: modeFile | 0o755, data: readFile(t, loader)},
		{name: "bin/busybox", mode: modeFile | 0o755, data: readFile(t, busybox)},
		{name: "init", mode: modeFile | 0o755, data: []byte(script)},
		{name: "golens", mode: modeFile | 0o755, data: staticAgentFor(t, dir, "arm64")},
	}, files...))
	if err != nil {
		t.Fatal(err)
	}
	vmlinuz := debianKernel(t, k.pkg, k.suite)
	timeout := k.timeout
	if timeout == 0 {
		timeout = 420 * time.Second
	}
	out := boot(t, "arm64", vmlinuz, initrd, timeout)
	lines := func(prefix string) []string {
		var ls []string
		for _, l := range strings.Split(out, "\n") {
			if i := strings.Index(l, prefix); i >= 0 {
				ls = append(ls, l[i+len(prefix):])
			}
		}
		return ls
	}
	if !strings.Contains(out, "guest: done") {
		t.Fatalf("guest did not finish its script:\n%s", out)
	}
	if r := lines("guest: kernel "); len(r) != 1 || !strings.HasPrefix(r[0], k.release) || !strings.HasSuffix(r[0], " aarch64") {
		t.Fatalf("guest kernel %q, want %s* aarch64:\n%s", r, k.release, out)
	}
	return lines
}

const (
	grpcOKTrace   = "4af7651916cd43dd8448eb211c80319c"
	grpcFailTrace = "5af7651916cd43dd8448eb211c80319c"
)

// awaitSixSpans is the chain and gRPC guests' wait, bounded, until the
// agent printed the calls' 6 spans. Emulated, it reads them late; a link
// whose events are read only while golens stops can be lost (an open gap,
// not what these guests test).
const awaitSixSpans = `i=0
until [ "$(grep -c . /tmp/spans.log)" -ge 6 ]; do i=$((i+1)); [ $i -gt 300 ] && break; sleep 0.1; done`

// grpcInit: gRPC app A (symbols, DWARF) calls gRPC app B (stripped: the
// grpc-go offsets come from the module table) from an HTTP handler.
var grpcInit = guestSetup + `echo "guest: kernel $(uname -r) $(uname -m)"
OTEL_SERVICE_NAME=grpca GODEBUG=httpmuxgo121=0 /grpcapp -addr 127.0.0.1:8080 >/tmp/a.log 2>&1 &
a=$!
OTEL_SERVICE_NAME=grpcb /grpcapp-stripped -addr 127.0.0.1:8082 -grpc-addr 127.0.0.1:9090 >/tmp/b.log 2>&1 &
b=$!
i=0
until grep -q listening /tmp/a.log && grep -q listening /tmp/b.log; do i=$((i+1)); [ $i -gt 600 ] && break; sleep 0.1; done
/golens --pid $a --pid $b --exporter console --log-level debug --metrics-addr 127.0.0.1:9464 >/tmp/spans.log 2>/tmp/golens.log &
agent=$!
i=0
until wget -q -O /dev/null http://127.0.0.1:9464/readyz 2>/dev/null; do
	i=$((i+1)); [ $i -gt 600 ] && break
	kill -0 $agent 2>/dev/null || break
	sleep 0.1
done
tp() { echo "traceparent: 00-$1-` + chainParent + `-01"; }
wget -q -O /tmp/r1 --header "$(tp ` + grpcOKTrace + `)" "http://127.0.0.1:8080/call?target=127.0.0.1%3A9090&method=Ok"
echo "guest: ok exit=$? $(cat /tmp/r1)"
wget -q -O /tmp/r2 --header "$(tp ` + grpcFailTrace + `)" "http://127.0.0.1:8080/call?target=127.0.0.1%3A9090&method=Fail"
echo "guest: fail exit=$?"
` + awaitSixSpans + `
wget -q -O /tmp/metrics http://127.0.0.1:9464/metrics
grep -E '^golens_(spans_(un)?linked_total|spans_held|events_read_total|spans_exported_total)' /tmp/metrics | sed 's/^/metric: /'
kill -TERM $agent
wait $agent
echo "guest: golens exit=$?"
sed 's/^/log: /' /tmp/golens.log
sed 's/^/out: /' /tmp/spans.log
sed 's/^/app: /' /tmp/a.log /tmp/b.log
echo "guest: done"
poweroff -f
`

// TestDebianKernelArm64GRPC: in the arm64 guest, an HTTP handler's gRPC
// call, OK and INTERNAL, between two watched arm64 grpc-go apps: HTTP
// server span -> gRPC client span -> gRPC server span, exact parents (the
// callee linked by its connection), gRPC codes and span statuses on both
// ends.
//
// Emulated, the agent reads the calls' events late, some only as it is
// stopped right after the calls: B's server span then went out unlinked,
// its owner lookup never answered (in the first of two runs here), until the
// tracer answered the lookups still queued at shutdown.
func TestDebianKernelArm64GRPC(t *testing.T) {
	t.Parallel() // its guests take turns with the others' in guestSlots
	need(t, "qemu-system-aarch64", "qemu-system-arm")
	dir := t.TempDir()
	a, err := harness.BuildApp("grpcapp", harness.Variant{Arch: "arm64"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := harness.BuildApp("grpcapp", harness.Variant{Arch: "arm64", Stripped: true}, dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := arm64Boot(t, dir, grpcInit,
		entry{name: "grpcapp", mode: modeFile | 0o755, data: readFile(t, a)},
		entry{name: "grpcapp-stripped", mode: modeFile | 0o755, data: readFile(t, b)})
	for prefix, want := range map[string]string{"guest: ok exit=": "0 OK", "guest: fail exit=": "1"} {
		if got := lines(prefix); len(got) != 1 || got[0] != want {
			t.Errorf("%s%q, want %q", prefix, got, want)
		}
	}
	log := strings.Join(lines("log: "), "\n")
	if strings.Contains(log, "level=ERROR") || strings.Count(log, "msg=attached") != 2 {
		t.Errorf("agent did not attach cleanly to both targets:\n%s", log)
	}
	if e := lines("guest: golens exit="); len(e) != 1 || e[0] != "0" {
		t.Errorf("golens exit status %q, want 0; log:\n%s", e, log)
	}
	raw := lines("out: ")
	t.Logf("spans:\n%s", strings.Join(raw, "\n"))
	t.Logf("linker, after the calls:\n%s", strings.Join(lines("metric: "), "\n"))
	t.Logf("caller lookups:\n%s", callerLookups(log))
	byTrace := map[string][]consoleSpan{}
	for _, l := range raw {
		m := consoleSpanRe.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("unparsed span line: %s", l)
			continue
		}
		s := consoleSpan{m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]}
		byTrace[s.trace] = append(byTrace[s.trace], s)
	}
	if len(raw) != 6 || len(byTrace) != 2 {
		t.Fatalf("%d spans in %d traces, want 6 in 2", len(raw), len(byTrace))
	}
	attr := func(s consoleSpan, kv string) bool { return strings.Contains(s.attrs+" ", " "+kv+" ") }
	for _, c := range []struct {
		trace, method, code, httpStatus, cliStatus, srvStatus string
	}{
		{grpcOKTrace, "Ok", "0", "200", "Unset", "Unset"},
		{grpcFailTrace, "Fail", "13", "502", "Error", "Error"},
	} {
		var httpSrv, cli, srv []consoleSpan
		for _, s := range byTrace[c.trace] {
			switch {
			case s.kind == "client":
				cli = append(cli, s)
			case attr(s, `rpc.system="grpc"`):
				srv = append(srv, s)
			default:
				httpSrv = append(httpSrv, s)
			}
		}
		if len(httpSrv) != 1 || len(cli) != 1 || len(srv) != 1 {
			t.Errorf("%s: %d HTTP server, %d gRPC client, %d gRPC server spans in trace %s, want 1 each", c.method, len(httpSrv), len(cli), len(srv), c.trace)
			continue
		}
		h, cl, sv := httpSrv[0], cli[0], srv[0]
		if h.service != "grpca" || h.name != "GET /call" || h.parent != chainParent || !attr(h, "http.response.status_code="+c.httpStatus) {
			t.Errorf("%s: HTTP server span %+v", c.method, h)
		}
		name := "test.Echo/" + c.method
		if cl.service != "grpca" || cl.name != name || cl.parent != h.span || cl.status != c.cliStatus || !attr(cl, "rpc.grpc.status_code="+c.code) || !attr(cl, "server.port=9090") {
			t.Errorf("%s: gRPC client span, want under %s: %+v", c.method, h.span, cl)
		}
		if sv.service != "grpcb" || sv.kind != "server" || sv.name != name || sv.parent != cl.span || sv.status != c.srvStatus || !attr(sv, "rpc.grpc.status_code="+c.code) || !attr(sv, `client.address="127.0.0.1"`) {
			t.Errorf("%s: gRPC server span, want under A's client span %s: %+v", c.method, cl.span, sv)
		}
	}
}

// arm64Kernel is the arm64 guest: Debian 12's 6.1 on QEMU's emulated virt
// board.
var arm64Kernel = guestKernel{
	name: "debian12-6.1-arm64", pkg: regexp.MustCompile(`^linux-image-6\.1\.0-(\d+)-cloud-arm64$`),
	suite: arm64Suite, release: "6.1.0-",
	missing: []string{"uprobe_multi", "sock_ops_current_pid"},
	arch:    "arm64",
	// Emulated, the kernel boots in ~13 s and Go runs several times
	// slower than under the x86 guests' TCG.
	timeout: 300 * time.Second,
}

// arm64Kernel612 is Debian 12 backports' arm64 6.12: what --inject-context
// needs, which 6.1 lacks.
var arm64Kernel612 = guestKernel{
	name: "debian12-backports-6.12-arm64", pkg: regexp.MustCompile(`^linux-image-6\.12\.(\d+)\+deb12-cloud-arm64$`),
	suite: "bookworm-backports/arm64", release: "6.12.",
	arch: "arm64",
	// Four targets and two agents, emulated, on a shared host.
	timeout: 600 * time.Second,
	traced:  "chained across two agents with `--inject-context` (`TestDebianKernelArm64Inject`), each parent exact: HTTP → stripped HTTP, HTTP → gRPC unary → stripped gRPC, the callee's agent continuing the traceparent golens put on the wire",
}

// injectInit: two agents, as on two nodes. Agent 1 watches A (HTTP, with
// DWARF) and gRPC app A and injects the caller's context on the wire;
// agent 2 watches B (stripped HTTP) and gRPC app B (stripped) and does not
// inject. Agent 2 does not see A's client spans, so B's server spans can
// join A's trace only through the traceparent agent 1 put on the wire.
var injectInit = guestSetup + `echo "guest: kernel $(uname -r) $(uname -m)"
OTEL_SERVICE_NAME=inja GODEBUG=httpmuxgo121=0 /httpserver -addr 127.0.0.1:8080 >/tmp/a.log 2>&1 &
a=$!
OTEL_SERVICE_NAME=injb GODEBUG=httpmuxgo121=0 /httpserver-stripped -addr 127.0.0.1:8081 >/tmp/b.log 2>&1 &
b=$!
OTEL_SERVICE_NAME=grpca /grpcapp -addr 127.0.0.1:8090 -grpc-addr 127.0.0.1:9090 >/tmp/ga.log 2>&1 &
ga=$!
OTEL_SERVICE_NAME=grpcb /grpcapp-stripped -addr 127.0.0.1:8092 -grpc-addr 127.0.0.1:9092 >/tmp/gb.log 2>&1 &
gb=$!
i=0
until grep -q listening /tmp/a.log && grep -q listening /tmp/b.log && grep -q listening /tmp/ga.log && grep -q listening /tmp/gb.log; do i=$((i+1)); [ $i -gt 900 ] && break; sleep 0.1; done
/golens --pid $a --pid $ga --inject-context --exporter console --metrics-addr 127.0.0.1:9464 >/tmp/spans1.log 2>/tmp/golens1.log &
ag1=$!
/golens --pid $b --pid $gb --exporter console --metrics-addr 127.0.0.1:9465 >/tmp/spans2.log 2>/tmp/golens2.log &
ag2=$!
for port in 9464 9465; do
	i=0
	until wget -q -O /dev/null http://127.0.0.1:$port/readyz 2>/dev/null; do
		i=$((i+1)); [ $i -gt 1800 ] && break
		kill -0 $ag1 2>/dev/null && kill -0 $ag2 2>/dev/null || break
		sleep 0.1
	done
done
tp() { echo "traceparent: 00-$1-` + chainParent + `-01"; }
wget -q -O /tmp/r1 --header "$(tp ` + injectHTTPTrace + `)" "http://127.0.0.1:8080/chain?to=http%3A%2F%2F127.0.0.1%3A8081%2Fecho%2Finjected"
echo "guest: http exit=$?"
wget -q -O /tmp/r2 --header "$(tp ` + injectGRPCTrace + `)" "http://127.0.0.1:8090/call?target=127.0.0.1%3A9092&method=Ok"
echo "guest: grpc exit=$? $(cat /tmp/r2)"
# Bounded: until both agents printed their spans.
i=0
until [ "$(grep -c . /tmp/spans1.log)" -ge 4 ] && [ "$(grep -c . /tmp/spans2.log)" -ge 2 ]; do i=$((i+1)); [ $i -gt 300 ] && break; sleep 0.1; done
wget -q -O /tmp/metrics http://127.0.0.1:9464/metrics
grep '^golens_inject_total' /tmp/metrics | sed 's/^/metric: /'
kill -TERM $ag1 $ag2
wait $ag1
echo "guest: golens1 exit=$?"
wait $ag2
echo "guest: golens2 exit=$?"
sed 's/^/log1: /' /tmp/golens1.log
sed 's/^/log2: /' /tmp/golens2.log
sed 's/^/out1: /' /tmp/spans1.log
sed 's/^/out2: /' /tmp/spans2.log
echo "guest: done"
poweroff -f
`

const (
	injectHTTPTrace = "6af7651916cd43dd8448eb211c80319c"
	injectGRPCTrace = "7af7651916cd43dd8448eb211c80319c"
)

// TestDebianKernelArm64Inject boots Debian 12 backports' arm64 6.12 (what
// --inject-context needs) and runs two arm64 agents, as on two nodes: the
// caller's agent injects, the callee's continues what arrived. Every span
// exact: A's server span under the incoming traceparent, A's client span
// under it, B's server span, seen by the other agent, under A's client
// span in A's trace (HTTP/1.1, and gRPC over HTTP/2); the injections
// counted; both agents attach cleanly and exit 0.
func TestDebianKernelArm64Inject(t *testing.T) {
	t.Parallel() // its guests take turns with the others' in guestSlots
	need(t, "qemu-system-aarch64", "qemu-system-arm")
	need(t, "apt-get", "apt")
	need(t, "dpkg-deb", "dpkg")
	dir := t.TempDir()
	var files []entry
	for _, b := range []struct {
		app string
		v   harness.Variant
		in  string
	}{
		{"httpserver", harness.Variant{Arch: "arm64"}, "httpserver"},
		{"httpserver", harness.Variant{Arch: "arm64", Stripped: true}, "httpserver-stripped"},
		{"grpcapp", harness.Variant{Arch: "arm64"}, "grpcapp"},
		{"grpcapp", harness.Variant{Arch: "arm64", Stripped: true}, "grpcapp-stripped"},
	} {
		bin, err := harness.BuildApp(b.app, b.v, dir)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, entry{name: b.in, mode: modeFile | 0o755, data: readFile(t, bin)})
	}
	lines := arm64BootOn(t, arm64Kernel612, dir, injectInit, files...)
	for prefix, want := range map[string]string{"guest: http exit=": "0", "guest: grpc exit=": "0 OK", "guest: golens1 exit=": "0", "guest: golens2 exit=": "0"} {
		if got := lines(prefix); len(got) != 1 || got[0] != want {
			t.Errorf("%s%q, want %q", prefix, got, want)
		}
	}
	for _, n := range []string{"1", "2"} {
		log := strings.Join(lines("log"+n+": "), "\n")
		if strings.Contains(log, "level=ERROR") || strings.Contains(log, "level=WARN") || strings.Count(log, "msg=attached") != 2 ||
			!strings.Contains(log, "kernel_missing=[]") || !strings.Contains(log, fmt.Sprintf("inject_context=%v", n == "1")) {
			t.Errorf("agent %s did not attach cleanly to both targets, or not injecting as asked:\n%s", n, log)
		}
	}
	// One injection per call, each by its protocol.
	metrics := strings.Join(lines("metric: "), "\n")
	for _, m := range []string{`golens_inject_total{reason="http1",result="injected"} 1`, `golens_inject_total{reason="http2",result="injected"} 1`} {
		if !strings.Contains(metrics+"\n", m+"\n") {
			t.Errorf("agent 1's metrics lack %s:\n%s", m, metrics)
		}
	}
	parse := func(prefix string) []consoleSpan {
		var spans []consoleSpan
		for _, l := range lines(prefix) {
			m := consoleSpanRe.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("unparsed span line: %s", l)
				continue
			}
			spans = append(spans, consoleSpan{m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]})
		}
		t.Logf("%s\n%s", prefix, strings.Join(lines(prefix), "\n"))
		return spans
	}
	one, two := parse("out1: "), parse("out2: ")
	if len(one) != 4 || len(two) != 2 {
		t.Fatalf("agent 1 printed %d spans, agent 2 %d; want 4 and 2", len(one), len(two))
	}
	find := func(spans []consoleSpan, trace, service, kind string) consoleSpan {
		t.Helper()
		var found []consoleSpan
		for _, s := range spans {
			if s.trace == trace && s.service == service && s.kind == kind {
				found = append(found, s)
			}
		}
		if len(found) != 1 {
			t.Fatalf("trace %s: %d %s spans of %s, want 1", trace, len(found), kind, service)
		}
		return found[0]
	}
	attr := func(s consoleSpan, kv string) bool { return strings.Contains(s.attrs+" ", " "+kv+" ") }
	for _, c := range []struct {
		trace, a, b, srvName, cliName, bName, port string
		cliAttr, bAttr                             string
	}{
		{injectHTTPTrace, "inja", "injb", "GET /chain", "GET", "GET /echo/", "8081", "http.response.status_code=200", `url.path="/echo/injected"`},
		{injectGRPCTrace, "grpca", "grpcb", "GET /call", "test.Echo/Ok", "test.Echo/Ok", "9092", "rpc.grpc.status_code=0", "rpc.grpc.status_code=0"},
	} {
		srv := find(one, c.trace, c.a, "server")
		cli := find(one, c.trace, c.a, "client")
		b := find(two, c.trace, c.b, "server")
		if srv.name != c.srvName || srv.parent != chainParent || srv.status != "Unset" || !attr(srv, "http.response.status_code=200") {
			t.Errorf("%s's server span, want under the incoming %s: %+v", c.a, chainParent, srv)
		}
		if cli.name != c.cliName || cli.parent != srv.span || cli.status != "Unset" || !attr(cli, c.cliAttr) || !attr(cli, "server.port="+c.port) {
			t.Errorf("%s's client span, want under its server span %s: %+v", c.a, srv.span, cli)
		}
		if b.name != c.bName || b.parent != cli.span || b.status != "Unset" || !attr(b, c.bAttr) {
			t.Errorf("%s's server span (agent 2), want under %s's client span %s: %+v", c.b, c.a, cli.span, b)
		}
	}
}

// callerLookups are the agent's debug lines on its callers' owner
// lookups: why a callee was linked or not.
func callerLookups(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `msg="caller lookup"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
