package kernels

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/golens/golens/probes/kernel"
	"github.com/golens/golens/test/harness"
)

// The README's support table says what the kernel matrix runs; this file
// makes it from the matrix's own cell list, so the two cannot drift apart.

const (
	tableStart = "<!-- support-table: made by test/kernels (TestSupportTable) from the matrix's cells; edit those, then paste what the test prints -->"
	tableEnd   = "<!-- /support-table -->"
	// hostKernel is the kernel line of the machines CI runs on, where the
	// end-to-end suite runs natively (shared/KERNEL.md).
	hostKernel = "6.18"
)

// tableArch is one architecture's guests, in the table's order.
type tableArch struct {
	arch    string
	kernels []guestKernel
	cells   func(k guestKernel) bool // whether its guests run the cells
	// more says what else its guests trace, in tests of their own.
	more string
}

// tableArches are the guests the matrix boots. An arm64 guest adds its
// kernels here.
var tableArches = []tableArch{
	{"amd64", amd64Kernels, func(k guestKernel) bool { return !k.refused }, ""},
	{"arm64", []guestKernel{arm64Kernel, arm64Kernel612}, func(guestKernel) bool { return false },
		"; chained (`TestDebianKernelArm64Chain`), each parent exact: HTTP → stripped PIE HTTP, a panic net/http recovers, one the middleware recovers; HTTP → gRPC OK and INTERNAL between two grpc-go apps, one stripped, codes exact, the gRPC server span under its client span (`TestDebianKernelArm64GRPC`)"},
}

// supportTable is the README's table: one row per booted kernel, and one
// for the machine's own kernel, which the end-to-end suite covers with
// every Go release of its matrix (hostGo).
func supportTable(goRelease string, hostGo []string) string {
	var b strings.Builder
	b.WriteString("| arch | kernel | Debian package | targets built with | what the real agent traced | result |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, a := range tableArches {
		for _, k := range a.kernels {
			traced := "—"
			if k.traced != "" {
				traced = k.traced
			} else if !k.refused {
				traced = "HTTP server (trace continued, status)"
				if a.cells(k) {
					var abouts []string
					for _, c := range cells {
						abouts = append(abouts, c.about)
					}
					traced += "; chained, each parent exact: " + strings.Join(abouts, ", ")
				}
				traced += a.more
			}
			built := "Go " + goRelease
			if !k.refused && a.cells(k) {
				built += " (cells: also " + strings.Join(cellGo(), ", ") + ")"
			}
			b.WriteString("| " + strings.Join([]string{a.arch, kernelLine(k.release), "`" + packageGlob(k.pkg) + "` (" + debianOf(k) + ")",
				built, traced, result(k)}, " | ") + " |\n")
		}
	}
	b.WriteString("| amd64 | " + hostKernel + " (the CI machine's own kernel, natively) | — | Go " + hostGo[0] + " to " + hostGo[len(hostGo)-1] +
		", plain, stripped, PIE | the whole end-to-end suite (`test/e2e`) | traced, every feature |\n")
	return b.String()
}

// cellGo lists the Go releases ("1.21") of the cells' targets built with
// a toolchain other than the installed one, stripped ones said so.
func cellGo() []string {
	var out []string
	for _, c := range cellTargets {
		if m := regexp.MustCompile(`^go(\d+\.\d+)`).FindStringSubmatch(c.v.Go); m != nil {
			r := m[1]
			if c.v.Stripped {
				r += " stripped"
			}
			out = append(out, r)
		}
	}
	return out
}

// kernelLine is "6.1" of a release prefix such as "6.1.0-".
func kernelLine(release string) string {
	return regexp.MustCompile(`^\d+\.\d+`).FindString(release)
}

// packageGlob spells a package-name pattern as a reader would:
// linux-image-6.1.0-*-cloud-amd64.
func packageGlob(re *regexp.Regexp) string {
	s := strings.TrimSuffix(strings.TrimPrefix(re.String(), "^"), "$")
	s = strings.ReplaceAll(s, `(\d+)`, "*")
	return strings.ReplaceAll(s, `\`, "")
}

// debianOf names the release a guest's kernel comes from, from its name
// ("debian12-backports-6.12": Debian 12 backports).
func debianOf(k guestKernel) string {
	m := regexp.MustCompile(`^debian(\d+)(-backports)?-`).FindStringSubmatch(k.name)
	if m == nil {
		return k.name
	}
	if m[2] != "" {
		return "Debian " + m[1] + " backports"
	}
	return "Debian " + m[1]
}

// result says what golens did on k: refused, or traced and what the
// missing features changed.
func result(k guestKernel) string {
	missing := map[string]bool{}
	for _, m := range k.missing {
		missing[m] = true
	}
	var required, batching, injection []string
	for _, f := range kernel.Features {
		if !missing[f.Name] {
			continue
		}
		switch f.Use {
		case kernel.Required:
			required = append(required, "`"+f.Name+"`")
		case kernel.Batching:
			batching = append(batching, "`"+f.Name+"`")
		case kernel.Injection:
			injection = append(injection, "`"+f.Name+"`")
		}
	}
	if k.refused {
		return "refused at start-up, exit 69 (no " + strings.Join(required, ", ") + "); target untouched"
	}
	r := "traced"
	if len(batching) > 0 {
		r += "; per-uprobe links (no " + strings.Join(batching, ", ") + ")"
	}
	if len(injection) > 0 {
		r += "; `--inject-context` refused, exit 69 (no " + strings.Join(injection, ", ") + ")"
	} else {
		r += "; with `--inject-context`"
	}
	return r
}

// hostMatrixGo reads the Go releases the end-to-end suite's matrix builds
// its targets with (test/e2e's matrixGo), as "1.21".
func hostMatrixGo(t *testing.T, root string) []string {
	t.Helper()
	src := readFile(t, filepath.Join(root, "test", "e2e", "matrix_test.go"))
	m := regexp.MustCompile(`(?m)^var matrixGo = \[\]string\{([^}]*)\}`).FindSubmatch(src)
	if m == nil {
		t.Fatal("no matrixGo list in test/e2e/matrix_test.go")
	}
	var rel []string
	for _, v := range regexp.MustCompile(`"go(\d+\.\d+)(?:\.\d+)?"`).FindAllSubmatch(m[1], -1) {
		rel = append(rel, string(v[1]))
	}
	if len(rel) == 0 {
		t.Fatal("matrixGo lists no release")
	}
	return rel
}

// goRelease is the release ("1.26") of the toolchain that builds the
// guests' targets: harness.BuildApp's go, with GOTOOLCHAIN=local.
func goRelease(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "env", "GOVERSION")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go env GOVERSION: %v", err)
	}
	m := regexp.MustCompile(`^go(\d+\.\d+)`).FindStringSubmatch(strings.TrimSpace(string(out)))
	if m == nil {
		t.Fatalf("go env GOVERSION: %q", out)
	}
	return m[1]
}

// The README's support table is exactly what the matrix runs: its guests
// (arch, kernel, package, missing features and so the result), the cells
// each runs, the Go release that builds their targets, and the Go releases
// the end-to-end suite covers on the machine's own kernel.
func TestSupportTable(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme := string(readFile(t, filepath.Join(root, "README.md")))
	i, j := strings.Index(readme, tableStart), strings.Index(readme, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no support table between\n%s\nand\n%s", tableStart, tableEnd)
	}
	got := strings.TrimSpace(readme[i+len(tableStart) : j])
	want := strings.TrimSpace(supportTable(goRelease(t), hostMatrixGo(t, root)))
	if got != want {
		t.Errorf("README.md's support table is not what the matrix runs; it should read:\n\n%s\n\nit reads:\n\n%s", want, got)
	}
}
