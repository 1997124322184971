package offsets_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golens/golens/probes/inspect"
	"github.com/golens/golens/probes/inspect/inspecttest"
	"github.com/golens/golens/probes/offsets"
)

// The tables are read from amd64 builds and used for arm64 binaries too:
// both are 64-bit with 8-byte pointers and the same alignment rules, and no
// struct the probes read has a field that exists on one architecture only.
// These tests hold the tables to that: every field they have must be where
// the DWARF of a linux/arm64 build of each release (and of the gRPC app)
// puts it. If a layout ever differs, the tables must become per
// architecture.

// arm64Releases are the toolchains the Go table was generated with.
var arm64Releases = []string{"go1.21.13", "go1.22.12", "go1.23.12", "go1.24.13", "go1.25.14", "go1.26.8", "go1.27.3"}

func TestArm64Layouts(t *testing.T) {
	for _, goVer := range arm64Releases {
		t.Run(goVer, func(t *testing.T) {
			exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{Toolchain: goVer, Arch: "arm64"})
			if err != nil {
				t.Fatal(err)
			}
			b, err := inspect.Open(exe)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.Arch != "arm64" || b.GoVersion != goVer {
				t.Fatalf("built %s %s, want arm64 %s", b.Arch, b.GoVersion, goVer)
			}
			compared := 0
			for _, f := range offsets.Fields() {
				got, ok := offsets.Lookup(goVer, f.Struct, f.Name)
				want, err := b.FieldOffset(f.Struct, f.Name)
				switch {
				case errors.Is(err, inspect.ErrNoField):
					// Not in this build (runtime.hmap of a Swiss-map
					// release, kept in the table for GOEXPERIMENT=noswissmap).
				case err != nil:
					t.Errorf("%s.%s: %v", f.Struct, f.Name, err)
				case !ok:
					t.Errorf("%s.%s: table has none, arm64 DWARF has %d", f.Struct, f.Name, want)
				case got != want:
					t.Errorf("%s.%s: table has %d, arm64 DWARF has %d", f.Struct, f.Name, got, want)
				default:
					compared++
				}
			}
			t.Logf("%d fields agree", compared)
			if compared < 30 {
				t.Errorf("only %d fields compared", compared)
			}
		})
	}
}

// TestArm64GRPCApp: the module table against the DWARF of test/apps/grpcapp
// built for linux/arm64.
func TestArm64GRPCApp(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "grpcapp")
	cmd := exec.Command("go", "build", "-o", exe, ".")
	cmd.Dir = filepath.Join("..", "..", "test", "apps", "grpcapp")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build grpcapp: %v\n%s", err, out)
	}
	b, err := inspect.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Arch != "arm64" {
		t.Fatalf("Arch = %q", b.Arch)
	}
	compared := 0
	for _, f := range offsets.ModuleFields() {
		mod := grpcModule
		if strings.HasPrefix(f.Struct, genprotoModule+"/") {
			mod = genprotoModule
		}
		v := b.Modules[mod]
		name := fmt.Sprintf("%s.%s (%s %s)", f.Struct, f.Name, mod, v)
		want, err := b.FieldOffset(f.Struct, f.Name)
		got, ok := offsets.LookupModule(mod, v, f.Struct, f.Name)
		switch {
		case errors.Is(err, inspect.ErrNoField):
			if ok {
				t.Errorf("%s: table has %d, arm64 DWARF has no such field", name, got)
			}
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case !ok:
			t.Errorf("%s: table has none, arm64 DWARF has %d", name, want)
		case got != want:
			t.Errorf("%s: table has %d, arm64 DWARF has %d", name, got, want)
		default:
			compared++
		}
	}
	t.Logf("%d fields agree", compared)
	if compared == 0 {
		t.Error("no field compared")
	}
}
