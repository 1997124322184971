package harness

import (
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
	if v.Stripped {
		args = append(args, "-ldflags=-s -w")
	}
	if v.PIE {
		args = append(args, "-buildmode=pie")
	}
	args = append(args, ".")
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join(root, "test", "apps", app)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
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
