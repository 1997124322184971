package offsets_test

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/golens/golens/probes/inspect"
	"github.com/golens/golens/probes/inspect/inspecttest"
	"github.com/golens/golens/probes/offsets"
)

func TestVersions(t *testing.T) {
	want := []string{"go1.21", "go1.22", "go1.23", "go1.24", "go1.25", "go1.26", "go1.27"}
	if got := offsets.Versions(); !slices.Equal(got, want) {
		t.Errorf("Versions() = %v, want %v", got, want)
	}
}

func TestLookup(t *testing.T) {
	for _, v := range offsets.Versions() {
		off, ok := offsets.Lookup(v+".0", "net/http.Request", "Method")
		if !ok || off != 0 {
			t.Errorf("%s: Request.Method = %d, %v; want 0, true", v, off, ok)
		}
		for _, f := range []offsets.Field{
			{Struct: "net/http.Request", Name: "URL"},
			{Struct: "net/url.URL", Name: "Path"},
			{Struct: "net/http.response", Name: "status"},
			{Struct: "runtime.g", Name: "goid"},
			{Struct: "net.TCPAddr", Name: "Port"},
		} {
			if _, ok := offsets.Lookup(v, f.Struct, f.Name); !ok {
				t.Errorf("%s: no %s.%s", v, f.Struct, f.Name)
			}
		}
		minor, _ := inspect.GoMinor(v)
		// Request.Pattern came with the ServeMux patterns of Go 1.23, and
		// Swiss-table maps replaced runtime.hmap in Go 1.24; until 1.26
		// GOEXPERIMENT=noswissmap kept it.
		if _, ok := offsets.Lookup(v, "net/http.Request", "Pattern"); ok != (minor >= 23) {
			t.Errorf("%s: has Request.Pattern = %v, want %v", v, ok, minor >= 23)
		}
		if _, ok := offsets.Lookup(v, "runtime.hmap", "buckets"); ok != (minor < 26) {
			t.Errorf("%s: has runtime.hmap.buckets = %v, want %v", v, ok, minor < 26)
		}
		if _, ok := offsets.Lookup(v, "internal/runtime/maps.Map", "dirPtr"); ok != (minor >= 24) {
			t.Errorf("%s: has maps.Map.dirPtr = %v, want %v", v, ok, minor >= 24)
		}
	}
}

func TestLookupVersions(t *testing.T) {
	for _, tc := range []struct {
		version string
		ok      bool
	}{
		{"go1.23.4", true},
		{"go1.24rc1", true},
		{"go1.22.0 X:nocoverageredesign", true},
		{"go1.26", true},
		{"go1.20.14", false},
		{"go1.99.0", false},
		{"devel go1.27-0123456789 Mon Jan 1 00:00:00 2026 +0000", false},
		{"", false},
	} {
		if _, ok := offsets.Lookup(tc.version, "net/http.Request", "Method"); ok != tc.ok {
			t.Errorf("Lookup(%q, Request, Method) found = %v, want %v", tc.version, ok, tc.ok)
		}
	}
	if _, ok := offsets.Lookup("go1.24.0", "net/http.Request", "NoSuchField"); ok {
		t.Error("Lookup of a field the table does not cover succeeded")
	}
}

// TestCurrentToolchain checks the table against the DWARF of the target built
// with the Go running this test, the way the generator reads it.
func TestCurrentToolchain(t *testing.T) {
	if _, ok := offsets.Lookup(runtime.Version(), "net/http.Request", "Method"); !ok {
		t.Skipf("the table has no entries for %s", runtime.Version())
	}
	exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := inspect.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, f := range offsets.Fields() {
		name := fmt.Sprintf("%s.%s", f.Struct, f.Name)
		want, err := b.FieldOffset(f.Struct, f.Name)
		got, ok := offsets.Lookup(runtime.Version(), f.Struct, f.Name)
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
