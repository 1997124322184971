package probes_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/golens/golens/probes"
	grpcprobe "github.com/golens/golens/probes/grpc"
	"github.com/golens/golens/probes/inspect"
	"github.com/golens/golens/probes/inspect/inspecttest"
	"github.com/golens/golens/probes/nethttp"
)

// A stripped binary of a Go release the offsets table does not know is
// refused with ErrNoOffsets naming the field and the version: never a
// guessed offset. The same binary under its real version resolves.
func TestUnknownGoWithoutDWARFRefused(t *testing.T) {
	exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{Flags: []string{"-ldflags=-s -w"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := inspect.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := probes.ResolveConstants(nethttp.Probe, b); err != nil {
		t.Fatalf("%s (known release) refused: %v", b.GoVersion, err)
	}
	b.GoVersion = "go1.99.0"
	_, err = probes.ResolveConstants(nethttp.Probe, b)
	if !errors.Is(err, probes.ErrNoOffsets) {
		t.Fatalf("go1.99.0 without DWARF: err %v, want ErrNoOffsets", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "go1.99.0") || !strings.Contains(msg, "no DWARF") {
		t.Errorf("refusal does not say what is missing: %s", msg)
	}
}

// The same for a library: a stripped gRPC program whose grpc-go release the
// table does not know is refused, naming the module version; under its real
// version it resolves from the table.
func TestUnknownGRPCWithoutDWARFRefused(t *testing.T) {
	exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{GRPC: "v1.84.0", Flags: []string{"-ldflags=-s -w"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := inspect.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := probes.ResolveConstants(grpcprobe.Probe, b); err != nil {
		t.Fatalf("grpc-go %s (known) refused: %v", b.Modules["google.golang.org/grpc"], err)
	}
	b.Modules["google.golang.org/grpc"] = "v1.99.0"
	_, err = probes.ResolveConstants(grpcprobe.Probe, b)
	if !errors.Is(err, probes.ErrNoOffsets) || !strings.Contains(err.Error(), "v1.99.0") {
		t.Fatalf("grpc-go v1.99.0 without DWARF: %v, want ErrNoOffsets naming the version", err)
	}
}

// The HTTP/2 writer's fields are optional: each Go release resolves the
// layout it has (bundled into net/http up to 1.26, net/http/internal/http2
// from 1.27), from DWARF or, stripped, from the table, and the other
// layout's constants stay 0 rather than refusing the probe.
func TestHTTP2FieldsPerRelease(t *testing.T) {
	for _, c := range []struct {
		toolchain string
		old       bool
	}{{"", true}, {"go1.27.3", false}} {
		for _, stripped := range []bool{false, true} {
			opts := inspecttest.Options{Toolchain: c.toolchain}
			if stripped {
				opts.Flags = []string{"-ldflags=-s -w"}
			}
			exe, err := inspecttest.Build(t.TempDir(), opts)
			if err != nil {
				t.Fatal(err)
			}
			b, err := inspect.Open(exe)
			if err != nil {
				t.Fatal(err)
			}
			consts, err := probes.ResolveConstants(nethttp.Probe, b)
			b.Close()
			if err != nil {
				t.Fatalf("%s stripped=%v: refused: %v", b.GoVersion, stripped, err)
			}
			_, hasOld := consts["off_h2rws_status"]
			_, hasNew := consts["off_h2rws2_status"]
			_, hasURL := consts["off_h2sreq_url"]
			if hasOld != c.old || hasNew == c.old || hasURL == c.old {
				t.Errorf("%s stripped=%v: old layout %v, new layout %v/%v; want old=%v", b.GoVersion, stripped, hasOld, hasNew, hasURL, c.old)
			}
		}
	}
}
