// Package e2e runs the real golens binary, with real eBPF probes, against
// real Go programs built here, exporting to a real OTLP/gRPC receiver.
package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/golens/golens/test/harness"
)

var (
	agentBin string
	workDir  string
)

func TestMain(m *testing.M) {
	if why := harness.EBPFUnavailable(); why != "" {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "e2e: eBPF is required in CI:", why)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "e2e: skipped, eBPF unavailable:", why)
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "golens-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = dir
	agentBin, err = harness.BuildAgent(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildApp builds a target once per variant for the whole run.
var built = map[string]string{}

func buildApp(t *testing.T, app string, v harness.Variant) string {
	t.Helper()
	key := app + "/" + v.String()
	if p, ok := built[key]; ok {
		return p
	}
	p, err := harness.BuildApp(app, v, filepath.Join(workDir))
	if err != nil {
		t.Fatal(err)
	}
	built[key] = p
	return p
}

// unavailable fails the test in CI (and under make test, which sets CI)
// and skips it elsewhere: a missing tool or kernel feature never passes a
// run that claims to test everything.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
