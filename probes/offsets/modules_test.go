package offsets_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golens/golens/probes/grpc"
	"github.com/golens/golens/probes/inspect"
	"github.com/golens/golens/probes/offsets"
)

const (
	grpcModule     = "google.golang.org/grpc"
	genprotoModule = "google.golang.org/genproto/googleapis/rpc"
)

// The module table covers every grpc-go minor release from v1.60, the
// oldest the gRPC probes support, to v1.85, with every field the probes
// read, and genproto from what grpc-go v1.60 requires on.
func TestModuleVersions(t *testing.T) {
	if got, want := offsets.Modules(), []string{genprotoModule, grpcModule}; !slices.Equal(got, want) {
		t.Errorf("Modules() = %v, want %v", got, want)
	}
	var want []string
	for minor := 60; minor <= 85; minor++ {
		want = append(want, fmt.Sprintf("v1.%d", minor))
	}
	if got := offsets.ModuleVersions(grpcModule); !slices.Equal(got, want) {
		t.Errorf("ModuleVersions(grpc) = %v, want %v", got, want)
	}
	// Fields that grpc-go has in some releases only, by struct or field:
	// the first and last minor release with them.
	const transport = grpcModule + "/internal/transport."
	ranges := map[string][2]int{
		transport + "headerFrame":                 {60, 81}, // clientHeaders from 1.82
		transport + "clientHeaders":               {82, 85},
		grpcModule + ".csAttempt.t":               {60, 70}, // renamed transport in 1.71
		grpcModule + ".csAttempt.transport":       {71, 85},
		grpcModule + ".csAttempt.s":               {60, 70}, // renamed transportStream in 1.71
		grpcModule + ".csAttempt.transportStream": {71, 85},
	}
	for minor := 60; minor <= 85; minor++ {
		v := fmt.Sprintf("v1.%d", minor)
		for _, f := range offsets.ModuleFields() {
			if !strings.HasPrefix(f.Struct, grpcModule+"/") && !strings.HasPrefix(f.Struct, grpcModule+".") {
				continue
			}
			r, ok := ranges[f.Struct+"."+f.Name]
			if !ok {
				r, ok = ranges[f.Struct]
			}
			has := !ok || (minor >= r[0] && minor <= r[1])
			if _, ok := offsets.LookupModule(grpcModule, v+".0", f.Struct, f.Name); ok != has {
				t.Errorf("grpc %s: %s.%s in the table: %v, want %v", v, f.Struct, f.Name, ok, has)
			}
		}
	}
	gp := offsets.ModuleVersions(genprotoModule)
	if len(gp) < 2 || gp[0] != "v0.0.0-20231002182017-d307bd883b97" {
		t.Errorf("ModuleVersions(genproto) = %v, want from v0.0.0-20231002182017-d307bd883b97 (grpc v1.60's) on", gp)
	}
	for _, v := range gp {
		if _, ok := offsets.LookupModule(genprotoModule, v, genprotoModule+"/status.Status", "Code"); !ok {
			t.Errorf("genproto %s: no status.Status.Code", v)
		}
	}
}

// Every grpc-go or genproto field the gRPC probe declares is in the module
// table, and every other one in the Go table: a stripped binary would
// otherwise be refused.
func TestGRPCProbeFieldsCovered(t *testing.T) {
	fields := slices.Clone(grpc.Probe.Fields)
	for _, h := range grpc.Probe.Hooks {
		fields = append(fields, h.Fields...)
	}
	for _, f := range fields {
		table := offsets.Fields()
		if strings.HasPrefix(f.Struct, "google.golang.org/") {
			table = offsets.ModuleFields()
		}
		if !slices.Contains(table, offsets.Field{Struct: f.Struct, Name: f.Field}) {
			t.Errorf("%s.%s (%s) is in no table", f.Struct, f.Field, f.Const)
		}
	}
}

func TestLookupModuleVersions(t *testing.T) {
	const (
		method = grpcModule + "/internal/transport.Stream"
		code   = genprotoModule + "/status.Status"
	)
	gp := offsets.ModuleVersions(genprotoModule)
	first, last := gp[0], gp[len(gp)-1]
	for _, tc := range []struct {
		module, version, strct, field string
		ok                            bool
	}{
		{grpcModule, "v1.64.1", method, "method", true},
		{grpcModule, "v1.64.0", method, "method", true}, // a patch release the generator did not build
		{grpcModule, "v1.85.0", method, "method", true},
		{grpcModule, "v1.59.0", method, "method", false},
		{grpcModule, "v1.99.0", method, "method", false},
		{grpcModule, "v1.86.0-dev", method, "method", false},
		{grpcModule, "v1.64", method, "method", false},
		{grpcModule, "(devel)", method, "method", false},
		{grpcModule, "", method, "method", false},
		{grpcModule, "v1.64.1", method, "noSuchField", false},
		{"example.com/other", "v1.64.1", method, "method", false},
		{genprotoModule, first, code, "Code", true},
		{genprotoModule, last, code, "Code", true},
		// Between two known versions that agree.
		{genprotoModule, "v0.0.0-20240101000000-000000000000", code, "Code", true},
		// Before the first and after the last known: unknown.
		{genprotoModule, "v0.0.0-20200101000000-000000000000", code, "Code", false},
		{genprotoModule, "v0.0.0-20991231235959-000000000000", code, "Code", false},
		{genprotoModule, "v0.1.0", code, "Code", false},
	} {
		if _, ok := offsets.LookupModule(tc.module, tc.version, tc.strct, tc.field); ok != tc.ok {
			t.Errorf("LookupModule(%s, %q, %s, %s) found = %v, want %v", tc.module, tc.version, tc.strct, tc.field, ok, tc.ok)
		}
	}
}

// buildGRPCApp builds test/apps/grpcapp, the gRPC target of the end-to-end
// tests, with the Go running this test.
func buildGRPCApp(t *testing.T, dir string) string {
	t.Helper()
	exe := filepath.Join(dir, "grpcapp")
	cmd := exec.Command("go", "build", "-o", exe, ".")
	cmd.Dir = filepath.Join("..", "..", "test", "apps", "grpcapp")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build grpcapp: %v\n%s", err, out)
	}
	return exe
}

// For the grpc-go and genproto versions test/apps/grpcapp uses, the module
// table has every field and agrees with the DWARF of a fresh build of it.
func TestGRPCApp(t *testing.T) {
	b, err := inspect.Open(buildGRPCApp(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
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
				t.Errorf("%s: table has %d, DWARF has no such field", name, got)
			}
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case !ok:
			t.Errorf("%s: table has none, DWARF has %d", name, want)
		case got != want:
			t.Errorf("%s: table has %d, DWARF has %d", name, got, want)
		}
	}
}
