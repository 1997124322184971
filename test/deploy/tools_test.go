package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// Versions of the tools built from the Go module proxy.
const (
	helmVersion   = "v3.22.0"
	jaegerVersion = "v1.76.0"
	// kubeVersion is the Kubernetes release the chart is rendered for.
	kubeVersion = "1.34.0"
)

// repoRoot is the golens module root.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// inCI tells whether a missing tool fails the test rather than skipping it.
func inCI() bool { return os.Getenv("CI") != "" }

// unavailable fails the test in CI and skips it elsewhere.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// run runs a command in dir and returns its combined output; it fails the
// test when the command fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// aptTool returns the path of command, from Debian package pkg. In CI a
// missing package is installed (the test runs as root there); elsewhere the
// test is skipped.
func aptTool(t *testing.T, command, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(command); err == nil {
		return p
	}
	if !inCI() {
		t.Skipf("%s not installed (Debian package %s); CI installs it", command, pkg)
	}
	lock := lockFile(t, "apt")
	defer lock()
	if p, err := exec.LookPath(command); err == nil {
		return p // installed while we waited
	}
	start := time.Now()
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	if out, err := runErr("", env, "apt-get", "install", "-y", "-qq", pkg); err != nil {
		// A stale package list: update once, then try again.
		t.Logf("apt-get install %s: %v; updating the package lists\n%s", pkg, err, out)
		run(t, "", env, "apt-get", "update", "-qq")
		run(t, "", env, "apt-get", "install", "-y", "-qq", pkg)
	}
	t.Logf("installed %s in %s", pkg, time.Since(start).Round(time.Second))
	p, err := exec.LookPath(command)
	if err != nil {
		t.Fatalf("%s still missing after installing %s", command, pkg)
	}
	return p
}

// cacheDir is where tools built by the tests are kept between runs.
func cacheDir(t *testing.T) string {
	t.Helper()
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, ".cache", "golens-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// lockFile takes an exclusive lock named name in the cache directory, so
// that concurrent test runs build (or install) a tool once; it returns the
// unlock function.
func lockFile(t *testing.T, name string) func() {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(cacheDir(t), name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// goTool is a program built from the Go module proxy.
type goTool struct {
	name    string   // binary name in the cache, with the version appended
	pkg     string   // main package, e.g. helm.sh/helm/v3/cmd/helm
	version string   // module version
	replace []string // old=new[@v] replacements the tool's own go.mod makes
}

// build returns the cached binary, building it first if needed: in a
// throwaway module that requires the tool's package at its version (with the
// tool's own replace lines, which `go install pkg@version` refuses).
func (g goTool) build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(cacheDir(t), g.name+"-"+g.version)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	unlock := lockFile(t, g.name)
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin // built by a concurrent run
	}
	start := time.Now()
	mod := t.TempDir()
	env := []string{"GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0"}
	steps := [][]string{{"mod", "init", "golens-test/" + g.name}}
	for _, r := range g.replace {
		steps = append(steps, []string{"mod", "edit", "-replace", r})
	}
	steps = append(steps,
		[]string{"get", g.pkg + "@" + g.version},
		[]string{"build", "-trimpath", "-o", bin + ".tmp", g.pkg},
	)
	for _, args := range steps {
		if out, err := runErr(mod, env, "go", args...); err != nil {
			os.Remove(bin + ".tmp")
			unavailable(t, "build %s %s from the Go module proxy: go %s: %v\n%s", g.pkg, g.version, strings.Join(args, " "), err, out)
		}
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s %s in %s (cached as %s)", g.pkg, g.version, time.Since(start).Round(time.Second), bin)
	return bin
}

// helm returns a helm binary.
func helm(t *testing.T) string {
	return goTool{name: "helm", pkg: "helm.sh/helm/v3/cmd/helm", version: helmVersion}.build(t)
}

// jaeger returns a Jaeger v2 binary, an OpenTelemetry Collector
// distribution.
func jaeger(t *testing.T) string {
	return goTool{
		name: "jaeger", pkg: "github.com/jaegertracing/jaeger/cmd/jaeger", version: jaegerVersion,
		replace: []string{"github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0"},
	}.build(t)
}

// buildAgent builds a static golens into dir.
func buildAgent(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "golens")
	run(t, repoRoot(t), []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-o", bin, "./cmd/golens")
	return bin
}

// agentVersion is what `golens --version` prints after "golens ".
func agentVersion(t *testing.T, bin string) string {
	t.Helper()
	out := strings.TrimSpace(run(t, "", nil, bin, "--version"))
	v, ok := strings.CutPrefix(out, "golens ")
	if !ok || v == "" || strings.ContainsAny(v, " \n") {
		t.Fatalf("%s --version printed %q, want \"golens VERSION\"", bin, out)
	}
	return v
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
