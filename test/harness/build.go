package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Variant is one way of building a target.
type Variant struct {
	Go       string // toolchain, e.g. "go1.22.12"; empty for the installed one
	Stripped bool   // -ldflags=-s -w
	PIE      bool   // -buildmode=pie
	// Experiment is GOEXPERIMENT, e.g. "noswissmap" (Go 1.24 and 1.25).
	Experiment string
	// External links with the C toolchain (cgo on, -linkmode=external), as
	// every program using cgo is.
	External bool
	// Arch is the GOARCH to build for, e.g. "arm64" (for a QEMU guest);
	// empty for the machine's own.
	Arch string
}

// String names the variant, e.g. "go1.22.12-stripped".
func (v Variant) String() string {
	s := v.Go
	if s == "" {
		s = runtime.Version()
	}
	if v.Stripped {
		s += "-stripped"
	}
	if v.PIE {
		s += "-pie"
	}
	if v.Experiment != "" {
		s += "-" + v.Experiment
	}
	if v.External {
		s += "-external"
	}
	if v.Arch != "" {
		s += "-" + v.Arch
	}
	return s
}

// RepoRoot finds the module root from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/golens/golens\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("golens module root not found above the working directory")
		}
		dir = parent
	}
}

var buildMu sync.Mutex

// BuildApp builds test/apps/<app> as variant into dir and returns the path.
func BuildApp(app string, v Variant, dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, app+"-"+v.String())
	args := []string{"build", "-o", out, "-trimpath"}
	var ldflags []string
	if v.Stripped {
		ldflags = append(ldflags, "-s", "-w")
	}
	if v.External {
		ldflags = append(ldflags, "-linkmode=external")
	}
	if len(ldflags) > 0 {
		args = append(args, "-ldflags="+strings.Join(ldflags, " "))
	}
	if v.PIE {
		args = append(args, "-buildmode=pie")
	}
	args = append(args, ".")
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join(root, "test", "apps", app)
	cgo := "CGO_ENABLED=0"
	if v.External {
		cgo = "CGO_ENABLED=1"
	}
	cmd.Env = append(os.Environ(), cgo, "GOFLAGS=-mod=mod")
	if v.Experiment != "" {
		cmd.Env = append(cmd.Env, "GOEXPERIMENT="+v.Experiment)
	}
	if v.Arch != "" {
		cmd.Env = append(cmd.Env, "GOOS=linux", "GOARCH="+v.Arch)
	}
	if v.Go != "" {
		cmd.Env = append(cmd.Env, "GOTOOLCHAIN="+v.Go)
	} else {
		cmd.Env = append(cmd.Env, "GOTOOLCHAIN=local")
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s (%s): %v\n%s", app, v, err, b)
	}
	return out, nil
}

// BuildAgent builds cmd/golens into dir.
func BuildAgent(dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "golens")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/golens")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build golens: %v\n%s", err, b)
	}
	return out, nil
}

// appGoLine is the go line of a copy BuildAppAgainst builds: the oldest Go
// golens supports, raised by the go command as far as the modules need.
const appGoLine = "1.21"

// BuildAppAgainst builds test/apps/<app> as variant into dir, as BuildApp
// does, but against the given module versions, such as
// "google.golang.org/grpc@v1.60.1". It builds a copy of the app whose go.mod
// requires only those: every other module is at the least version they need
// (the go command's minimal version selection), and the go line is as old as
// they allow, so that older toolchains build it too. The app's own source
// must build against each version asked for.
func BuildAppAgainst(app string, v Variant, dir string, require ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	var versions []string
	for _, r := range require {
		_, version, ok := strings.Cut(r, "@")
		if !ok {
			return "", fmt.Errorf("build %s: requirement %q is not path@version", app, r)
		}
		versions = append(versions, version)
	}
	name := app + "-" + strings.Join(append(versions, v.String()), "-")
	src := filepath.Join(dir, name+".src")
	if err := os.RemoveAll(src); err != nil {
		return "", err
	}
	if err := os.CopyFS(src, os.DirFS(filepath.Join(root, "test", "apps", app))); err != nil {
		return "", fmt.Errorf("build %s: copy: %w", name, err)
	}
	toolchain := v.Go
	if toolchain == "" {
		toolchain = "local"
	}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN="+toolchain)
	goCmd := func(args ...string) ([]byte, error) {
		cmd := exec.Command("go", args...)
		cmd.Dir = src
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			return nil, fmt.Errorf("build %s: go %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
		}
		return out, nil
	}

	buildMu.Lock()
	defer buildMu.Unlock()
	js, err := goCmd("mod", "edit", "-json")
	if err != nil {
		return "", err
	}
	var mod struct{ Module struct{ Path string } }
	if err := json.Unmarshal(js, &mod); err != nil {
		return "", fmt.Errorf("build %s: go.mod: %w", name, err)
	}
	// A fresh go.mod: go get raises its go line to what the requirements
	// need and tidy adds what they bring, at the versions they ask for.
	gomod := fmt.Sprintf("module %s\n\ngo %s\n", mod.Module.Path, appGoLine)
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
		return "", err
	}
	if err := os.Remove(filepath.Join(src, "go.sum")); err != nil && !os.IsNotExist(err) {
		return "", err
	}
	if _, err := goCmd(append([]string{"get"}, require...)...); err != nil {
		return "", err
	}
	if _, err := goCmd("mod", "tidy"); err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	args := []string{"build", "-o", out, "-trimpath"}
	if v.Stripped {
		args = append(args, "-ldflags=-s -w")
	}
	if v.PIE {
		args = append(args, "-buildmode=pie")
	}
	if _, err := goCmd(append(args, ".")...); err != nil {
		return "", err
	}
	return out, nil
}
